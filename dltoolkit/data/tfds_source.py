"""``tfds:NAME``: a TensorFlow Datasets dataset already prepared in ``data.data_dir``.

Nothing is downloaded: TFDS datasets must be prepared beforehand (``tfds build NAME
--data_dir DIR`` on a machine with a network), then read here from that folder.
"""

from __future__ import annotations

import numpy as np

from dltoolkit.config import DataConfig
from dltoolkit.data.arrays import LabelledArrays, labels_to_indices
from dltoolkit.errors import DataError


def load(name: str, config: DataConfig) -> LabelledArrays:
    """Load every split of a prepared TFDS image-classification dataset."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "tfds:NAME sources need tensorflow-datasets; install it with: "
            'pip install "dltoolkit[tfds]"'
        ) from None
    import tensorflow as tf

    where = config.data_dir or "TFDS's default data folder"
    try:
        builder = tfds.builder(name, data_dir=config.data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError and friends
        raise DataError(f"TFDS dataset {name!r} is unknown ({type(error).__name__}).") from None
    if not builder.is_prepared():
        raise DataError(
            f"TFDS dataset {name!r} is not prepared in {where} and will not be downloaded; "
            f"run `tfds build {name} --data_dir DIR` where there is network access, then pass "
            "--set data.data_dir=DIR."
        )
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    features = builder.info.features
    if image_key not in features or label_key not in features:
        raise DataError(
            f"TFDS dataset {name!r} has features {sorted(features)}; expected an image and a "
            "label feature (supervised keys, or features named 'image' and 'label')."
        )
    images, labels = [], []
    size = tuple(config.image_size) if config.image_size else None
    for split in builder.info.splits:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
        for example in dataset:
            image, label = example[image_key], example[label_key]
            if size is not None:
                image = tf.image.resize(image, size)
            images.append(np.asarray(image, np.float32))
            labels.append(label.numpy())
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DataError(
            f"TFDS dataset {name!r} has images of several sizes; "
            "set data.image_size=[height,width] to resize them."
        )
    y, class_names = labels_to_indices(np.asarray(labels), f"tfds:{name}")
    names = getattr(features[label_key], "names", None)
    if names and len(names) >= len(class_names):
        class_names = [names[int(value)] for value in np.unique(np.asarray(labels))]
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return LabelledArrays(x=x, y=y, class_names=class_names)
