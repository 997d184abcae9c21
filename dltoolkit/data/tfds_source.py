"""``tfds:NAME``: a TensorFlow Datasets dataset already prepared in ``data.data_dir``.

Nothing is downloaded: TFDS datasets must be prepared beforehand (``tfds build NAME
--data_dir DIR`` on a machine with a network), then read here from that folder. Every
split of the dataset is pooled and split again like any source (stratified, from the
seed).

A small dataset is read into memory. A large one streams (``data.cache``: ``disk`` or
``none``, or ``auto`` where its images as float32 would take more than
:data:`AUTO_STREAM_BYTES`): one pass of ``as_dataset`` writes the decoded images, one row
each, into a file in the cache folder (as the dataset's own uint8 pixels, or float32
where ``data.image_size`` resizes them), and training reads that file a block at a time
(:class:`dltoolkit.data.rows.EncodedRows`); memory holds the labels. With ``disk`` the
file is kept for later runs (found again by the dataset's name, version, folder and
image size); with ``none`` it is removed at exit. TFRecord files cannot be read at a
given example, which splitting and shuffling need: decoding once into rows that can is
what makes both possible without holding the images.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays, labels_to_indices
from dltoolkit.data.rows import EncodedRows
from dltoolkit.data.streams import filled_cache_folder
from dltoolkit.errors import DataError

# data.cache: auto streams a dataset whose images as float32 would take more than this.
AUTO_STREAM_BYTES = 1 << 30


class _Dataset:
    """A prepared TFDS dataset and the names of its image and label features."""

    def __init__(self, name: str, config: DataConfig):
        try:
            import tensorflow_datasets as tfds
        except ImportError:
            raise DataError(
                "tfds:NAME sources need tensorflow-datasets; install it with: "
                'pip install "dltoolkit[tfds]"'
            ) from None
        where = config.data_dir or "TFDS's default data folder"
        try:
            builder = tfds.builder(name, data_dir=config.data_dir)
        except Exception as error:  # tfds raises its own DatasetNotFoundError and friends
            raise DataError(f"TFDS dataset {name!r} is unknown ({type(error).__name__}).") from None
        if not builder.is_prepared():
            raise DataError(
                f"TFDS dataset {name!r} is not prepared in {where} and will not be downloaded; "
                f"run `tfds build {name} --data_dir DIR` where there is network access, then "
                "pass --set data.data_dir=DIR."
            )
        self.image_key, self.label_key = builder.info.supervised_keys or ("image", "label")
        features = builder.info.features
        if self.image_key not in features or self.label_key not in features:
            raise DataError(
                f"TFDS dataset {name!r} has features {sorted(features)}; expected an image and "
                "a label feature (supervised keys, or features named 'image' and 'label')."
            )
        self.name, self.builder, self.features = name, builder, features
        self.size = tuple(config.image_size) if config.image_size else None

    @property
    def count(self) -> int:
        """Examples in all splits."""
        return sum(split.num_examples for split in self.builder.info.splits.values())

    def image_shape(self) -> tuple[int | None, ...]:
        """The shape every image is read at (``None`` where the dataset's images vary)."""
        shape = tuple(self.features[self.image_key].shape)
        return (*self.size, shape[-1]) if self.size else shape

    def examples(self) -> Iterator[tuple[np.ndarray, Any]]:
        """``(image, label)`` of every example of every split, in order, resized to
        ``data.image_size`` where set; images of differing sizes are refused."""
        import tensorflow as tf

        first: tuple[int, ...] | None = None
        for split in self.builder.info.splits:
            dataset = self.builder.as_dataset(split=split, shuffle_files=False)
            for example in dataset.prefetch(tf.data.AUTOTUNE):
                image, label = example[self.image_key], example[self.label_key]
                if self.size is not None:
                    image = tf.image.resize(image, self.size)
                image = image.numpy()
                if first is None:
                    first = image.shape
                elif image.shape != first:
                    raise DataError(
                        f"TFDS dataset {self.name!r} has images of several sizes; "
                        "set data.image_size=[height,width] to resize them."
                    )
                yield image, label.numpy()

    def class_names(self, labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Label indices and class names (the dataset's own names where it has them)."""
        y, class_names = labels_to_indices(labels, f"tfds:{self.name}")
        names = getattr(self.features[self.label_key], "names", None)
        if names and len(names) >= len(class_names):
            class_names = [names[int(value)] for value in np.unique(labels)]
        return y, class_names


def load(name: str, config: DataConfig) -> LabelledArrays:
    """Load every split of a prepared TFDS image-classification dataset into memory."""
    dataset = _Dataset(name, config)
    images, labels = [], []
    for image, label in dataset.examples():
        images.append(image.astype(np.float32))
        labels.append(label)
    y, class_names = dataset.class_names(np.asarray(labels))
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return LabelledArrays(x=x, y=y, class_names=class_names)


def streams(name: str, config: DataConfig) -> bool:
    """Whether ``tfds:name`` is decoded once into rows on disk rather than into memory."""
    if config.cache == "memory":
        return False
    if config.cache == "auto":
        dataset = _Dataset(name, config)
        shape = dataset.image_shape()
        if None in shape:
            return False  # images of several sizes: refused when read, with what to do
        return 4 * dataset.count * math.prod(shape) > AUTO_STREAM_BYTES
    return True


def load_streamed(name: str, config: DataConfig) -> LabelledArrays:
    """The labels in memory and the images as :class:`EncodedRows` of a file in the cache
    folder, written by one pass of ``as_dataset`` (or found there from an earlier run)."""
    dataset = _Dataset(name, config)
    folder = filled_cache_folder(
        f"tfds-{_digest(dataset, config)}",
        config.cache,
        config.cache_dir,
        lambda partial: _decode(dataset, partial),
        marker="meta.json",
    )
    meta = json.loads((folder / "meta.json").read_text())
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    y, class_names = dataset.class_names(labels)
    shape = tuple(meta["shape"])
    row_shape = shape + ((1,) if len(shape) == 2 else ())
    rows = EncodedRows(
        [(folder / "x.raw", range(len(labels)))],
        math.prod(shape),
        row_shape=row_shape,
        stored=meta["dtype"],
    )
    return LabelledArrays(x=rows, y=y, class_names=class_names)


def _decode(dataset: _Dataset, folder: Path) -> None:
    """Every image appended to ``folder/x.raw`` in its own type; labels and layout beside."""
    labels: list[Any] = []
    shape: tuple[int, ...] = ()
    dtype = np.dtype(np.uint8)
    with open(folder / "x.raw", "wb") as out:
        for image, label in dataset.examples():
            if not labels:
                shape, dtype = image.shape, image.dtype
            out.write(np.ascontiguousarray(image, dtype).tobytes())
            labels.append(label)
    if not labels:
        raise DataError(f"TFDS dataset {dataset.name!r} holds no examples.")
    np.save(folder / "labels.npy", np.asarray(labels), allow_pickle=False)
    meta = {"shape": list(shape), "dtype": dtype.str, "examples": len(labels)}
    (folder / "meta.json").write_text(json.dumps(meta))


def _digest(dataset: _Dataset, config: DataConfig) -> str:
    """Of the dataset's name, version, folder, split sizes and the image size."""
    info = dataset.builder.info
    splits = sorted((name, split.num_examples) for name, split in info.splits.items())
    key = f"{dataset.name}\0{info.version}\0{dataset.builder.data_dir}\0{splits}\0{dataset.size}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
