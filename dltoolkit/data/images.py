"""``images:PATH``: a folder with one subfolder of PNG/JPEG/BMP/GIF images per class.

A run lists the files, checks every header, splits the list and streams the images
(:mod:`dltoolkit.data.streams`); nothing decodes the whole folder into memory."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays
from dltoolkit.data.streams import ImageFiles, writable_cache_dir
from dltoolkit.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
# Folders of at least this many images show a progress bar while their headers are read.
PROGRESS_FROM = 2000


def image_files(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, sorted by path."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def check_images(files: list[Path]) -> set[tuple[int, int]]:
    """Open each image's header so an unreadable file is named before training starts;
    return the set of (height, width) sizes found. About 70 microseconds a small file, so
    100,000 files take seconds; a progress bar shows on a terminal."""
    import click
    from PIL import Image, UnidentifiedImageError

    sizes: set[tuple[int, int]] = set()
    show = len(files) >= PROGRESS_FROM and sys.stderr.isatty()
    with click.progressbar(
        files, label="checking images", file=sys.stderr, hidden=not show
    ) as progress:
        for path in progress:
            try:
                with Image.open(path) as image:
                    width, height = image.size
                    image.verify()
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
                raise DataError(
                    f"image file {str(path)!r} cannot be read ({type(error).__name__}); "
                    "remove or replace it."
                ) from None
            sizes.add((height, width))
    return sizes


def image_size(config: DataConfig, sizes: set[tuple[int, int]], where: str) -> tuple[int, int]:
    """``data.image_size``, or the images' own size where they all share one."""
    if config.image_size:
        return (int(config.image_size[0]), int(config.image_size[1]))
    if len(sizes) == 1:
        return next(iter(sizes))
    shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
    more = ", ..." if len(sizes) > 4 else ""
    raise DataError(
        f"images in {where!r} come in {len(sizes)} sizes ({shown}{more}); set "
        "data.image_size=[height,width] to resize them all to one."
    )


def check_folder(path: str) -> Path:
    """``path`` as a folder, or a one-line error saying what ``images:PATH`` expects."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(
            f"image folder {path!r} does not exist; pass --data images:PATH to a folder "
            "with one subfolder of images per class."
        )
    return folder


@dataclass
class ImageFolder:
    """A labelled image folder: every file, its class index and the class names."""

    files: list[Path]
    labels: np.ndarray
    class_names: list[str]
    size: tuple[int, int]
    channels: int

    def examples(self, config: DataConfig, rows: np.ndarray | None = None) -> ImageFiles:
        """The images at ``rows`` (all by default), streamed as ``data.cache`` says."""
        files = self.files if rows is None else [self.files[row] for row in rows]
        cache_dir = writable_cache_dir(config.cache_dir) if config.cache == "disk" else None
        return ImageFiles(files, self.size, self.channels, config.cache, cache_dir)


def index_folder(path: str, config: DataConfig) -> ImageFolder:
    """The files of an ``images:PATH`` folder (one subfolder per class, sorted), each
    header checked, and the size they are decoded to."""
    folder = check_folder(path)
    class_dirs = sorted(child for child in folder.iterdir() if child.is_dir())
    if not class_dirs:
        raise DataError(
            f"image folder {path!r} has no class subfolders; expected PATH/<class>/<image>.png "
            "with one subfolder per class."
        )
    per_class = [image_files(child) for child in class_dirs]
    empty = [child.name for child, files in zip(class_dirs, per_class, strict=True) if not files]
    if empty:
        raise DataError(
            f"image folder {path!r}: class subfolder(s) {empty} hold no "
            f"{'/'.join(IMAGE_EXTENSIONS)} images; add images or remove them."
        )
    files = [file for files in per_class for file in files]
    labels = np.concatenate(
        [np.full(len(files), index, np.int64) for index, files in enumerate(per_class)]
    )
    size = image_size(config, check_images(files), path)
    return ImageFolder(
        files, labels, [child.name for child in class_dirs], size, _CHANNELS[config.color_mode]
    )


def load(path: str, config: DataConfig) -> LabelledArrays:
    """Every image under ``path``'s class subfolders decoded into one array (small
    folders; runs stream them instead, see :func:`index_folder`)."""
    indexed = index_folder(path, config)
    images = indexed.examples(dataclasses.replace(config, cache="none"))
    return LabelledArrays(
        x=images.read(),
        y=indexed.labels,
        class_names=indexed.class_names,
        file_paths=[str(file) for file in indexed.files],
    )


def unlabelled_files(path: str) -> list[Path]:
    """Every image under ``path`` (any depth), sorted by path, headers checked."""
    folder = check_folder(path)
    files = image_files(folder)
    if not files:
        raise DataError(f"image folder {path!r} holds no {'/'.join(IMAGE_EXTENSIONS)} images.")
    return files


def load_unlabelled(path: str, config: DataConfig) -> tuple[np.ndarray, list[str]]:
    """Every image under ``path`` (any depth), sorted by path, decoded like training images."""
    files = unlabelled_files(path)
    return read_images(files, config), [str(file) for file in files]


def read_images(files: list[Path], config: DataConfig) -> np.ndarray:
    """Decode ``files`` (each checked first) into one float32 array of ``data.image_size``
    images in ``data.color_mode``, exactly as training decodes them."""
    size = image_size(config, check_images(files), str(files[0].parent) if files else "")
    return ImageFiles(files, size, _CHANNELS[config.color_mode], cache="none").read()
