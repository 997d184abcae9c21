"""``images:PATH``: a folder with one subfolder of PNG/JPEG/BMP/GIF images per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays
from dltoolkit.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DEFAULT_IMAGE_SIZE = (64, 64)
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def _image_size(config: DataConfig) -> tuple[int, int]:
    return tuple(config.image_size) if config.image_size else DEFAULT_IMAGE_SIZE


def image_files(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, sorted by path."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )


def _verify(files: list[Path]) -> None:
    """Open each image header so an unreadable file is named before training starts."""
    from PIL import Image, UnidentifiedImageError

    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
            raise DataError(
                f"image file {str(path)!r} cannot be read ({type(error).__name__}); "
                "remove or replace it."
            ) from None


def check_folder(path: str) -> Path:
    """``path`` as a folder, or a one-line error saying what ``images:PATH`` expects."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(
            f"image folder {path!r} does not exist; pass --data images:PATH to a folder "
            "with one subfolder of images per class."
        )
    return folder


def load(path: str, config: DataConfig) -> LabelledArrays:
    """Load every image under ``path``'s class subfolders, resized to ``data.image_size``."""
    import keras

    folder = check_folder(path)
    class_dirs = sorted(child for child in folder.iterdir() if child.is_dir())
    if not class_dirs:
        raise DataError(
            f"image folder {path!r} has no class subfolders; expected PATH/<class>/<image>.png "
            "with one subfolder per class."
        )
    empty = [child.name for child in class_dirs if not image_files(child)]
    if empty:
        raise DataError(
            f"image folder {path!r}: class subfolder(s) {empty} hold no "
            f"{'/'.join(IMAGE_EXTENSIONS)} images; add images or remove them."
        )
    files = image_files(folder)
    _verify(files)
    dataset = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        color_mode=config.color_mode,
        image_size=_image_size(config),
        batch_size=None,
        shuffle=False,
        verbose=False,
    )
    class_names = list(dataset.class_names)
    file_paths = list(dataset.file_paths)
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return LabelledArrays(
        x=np.stack(images).astype(np.float32),
        y=np.asarray(labels, np.int64),
        class_names=class_names,
        file_paths=file_paths,
    )


def load_unlabelled(path: str, config: DataConfig) -> tuple[np.ndarray, list[str]]:
    """Every image under ``path`` (any depth), sorted by path, resized like training images."""
    folder = check_folder(path)
    files = image_files(folder)
    if not files:
        raise DataError(f"image folder {path!r} holds no {'/'.join(IMAGE_EXTENSIONS)} images.")
    return read_images(files, config), [str(file) for file in files]


def read_images(files: list[Path], config: DataConfig) -> np.ndarray:
    """Decode ``files`` (each checked first) into one float32 array of ``data.image_size``
    images in ``data.color_mode``."""
    import keras

    _verify(files)
    size = _image_size(config)
    images = [
        keras.utils.img_to_array(
            keras.utils.load_img(file, color_mode=config.color_mode, target_size=size)
        )
        for file in files
    ]
    return np.stack(images).astype(np.float32)
