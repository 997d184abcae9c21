"""Streamed image folders: the split on the file list, the decoded pixels, the caches, the
per-worker shards and the errors of files that cannot be decoded."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, invoke, one_line_error, write_image_folder

from dltoolkit.config import DataConfig
from dltoolkit.data import load_dataset
from dltoolkit.data.arrays import LabelledArrays
from dltoolkit.data.sources import split_stratified
from dltoolkit.data.streams import ImageFiles, decoded_rows, is_streamed

pytestmark = pytest.mark.backend_neutral


def in_memory(folder: Path, size: tuple[int, int]) -> LabelledArrays:
    """The folder decoded whole by Keras' own loader: what the streamed splits must equal."""
    import keras

    dataset = keras.utils.image_dataset_from_directory(
        folder, image_size=size, batch_size=None, shuffle=False, verbose=False
    )
    pairs = list(dataset.as_numpy_iterator())
    return LabelledArrays(
        np.stack([x for x, _ in pairs]), np.array([y for _, y in pairs]), dataset.class_names
    )


def test_streamed_splits_equal_the_in_memory_split_file_for_file(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=3, per_class=20, size=12)
    config = DataConfig(source=f"images:{folder}", image_size=[6, 6])
    streamed = load_dataset(config, seed=4)
    reference = split_stratified(in_memory(folder, (6, 6)), 0.15, 0.15, 4, config.source)
    assert is_streamed(streamed.x_train) and streamed.input_shape == (6, 6, 3)
    for name in ("train", "val", "test"):
        x = getattr(streamed, f"x_{name}")
        np.testing.assert_array_equal(
            getattr(streamed, f"y_{name}"), getattr(reference, f"y_{name}")
        )
        np.testing.assert_array_equal(x.read(), getattr(reference, f"x_{name}"))
    assert set(streamed.x_train.files).isdisjoint(streamed.x_test.files)


def test_image_size_defaults_to_the_images_own_and_mixed_sizes_say_what_to_set(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=2, per_class=5, size=9)
    assert load_dataset(DataConfig(source=f"images:{folder}"), 0).input_shape == (9, 9, 3)
    write_image_folder(tmp_path / "images" / "class_0" / "big", classes=1, per_class=1, size=20)
    from dltoolkit.errors import DataError

    with pytest.raises(DataError, match=r"come in 2 sizes \(9x9, 20x20\); set data.image_size"):
        load_dataset(DataConfig(source=f"images:{folder}"), 0)


def test_batches_are_shuffled_every_epoch_from_the_seed_and_keep_labels_with_images(
    tmp_path: Path,
):
    folder = write_image_folder(tmp_path / "images", classes=2, per_class=12, size=4)
    images = load_dataset(DataConfig(source=f"images:{folder}", cache="none"), 0).x_train
    labels = np.arange(len(images))  # each image's own row number
    pixels = images.read()

    def epochs(seed: int) -> list[np.ndarray]:
        data = images.batches(5, labels, shuffle_seed=seed)
        order = []
        for _ in range(2):
            rows = []
            for x, y in data.as_numpy_iterator():
                np.testing.assert_array_equal(x, pixels[y])
                rows.extend(y.tolist())
            order.append(np.array(rows))
        return order

    first, again = epochs(3), epochs(3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert sorted(first[0]) == list(range(len(images))) and not np.array_equal(*first)


def test_disk_cache_is_written_under_cache_dir_and_read_back(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=2, per_class=6, size=5)
    config = DataConfig(source=f"images:{folder}", cache="disk", cache_dir=str(tmp_path / "c"))
    images = load_dataset(config, 0).x_train
    first = images.read()
    assert list((tmp_path / "c").glob("images-*.index"))
    again = load_dataset(config, 0).x_train
    for file in again.files:  # the cache answers: the files' pixels are no longer read
        stat = os.stat(file)
        Path(file).write_bytes(b"\0" * stat.st_size)  # same size and time: same cache
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    np.testing.assert_array_equal(np.concatenate(list(again.batches(4).as_numpy_iterator())), first)


def test_disk_cache_in_a_folder_that_cannot_be_written_is_one_line(workdir: Path):
    folder = write_image_folder(workdir / "images", classes=2, per_class=4, size=5)
    (workdir / "blocked").write_text("a file where the folder would be")
    settings = ["data.cache=disk", f"data.cache_dir={workdir / 'blocked' / 'x'}"]
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    result = invoke("recipe", "cnn-image", *TINY, "--data", f"images:{folder}", *arguments)
    message = one_line_error(result)
    assert "data.cache: disk cannot write to" in message and "data.cache_dir" in message
    assert not (workdir / "runs").exists()


def corrupt_pixels(path: Path) -> None:
    """Zero a PNG's compressed pixels and fix the chunk's CRC: the header check passes,
    decoding fails."""
    data = path.read_bytes()
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    chunk = b"IDAT" + b"\0" * length
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    path.write_bytes(
        data[: start - 4] + data[start - 4 : start] + chunk + crc + data[start + 8 + length :]
    )


def test_an_image_that_fails_to_decode_while_streaming_is_named(workdir: Path):
    folder = write_image_folder(workdir / "images", classes=2, per_class=6, size=6)
    bad = folder / "class_1" / "4.png"
    corrupt_pixels(bad)
    message = one_line_error(invoke("recipe", "cnn-image", *TINY, "--data", f"images:{folder}"))
    assert f"image file '{bad}' cannot be decoded (Invalid PNG data" in message
    assert message.endswith("remove or replace it.")


def test_each_worker_decodes_only_its_own_equal_shard(tmp_path: Path):
    from dltoolkit.distribute.loop import worker_shard
    from dltoolkit.distribute.placement import Placement

    folder = write_image_folder(tmp_path / "images", classes=1, per_class=11, size=3)
    images = ImageFiles(sorted(map(str, folder.rglob("*.png"))), (3, 3), 3, cache="none")
    labels = np.arange(11)
    seen = []
    for index in range(2):
        placement = Placement(
            strategy="multi_worker", precision="float32", replicas=2, workers=2,
            worker_index=index,
        )  # fmt: skip
        batches = list(worker_shard((images, labels), placement, 4, None).as_numpy_iterator())
        # Global batches of 4 (tf.distribute splits each over the cluster's replicas): the
        # same number of steps on both workers, each reading only its own files.
        assert [len(y) for _, y in batches] == [4, 1]
        seen.append(np.concatenate([y for _, y in batches]))
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(10))  # the 11th row: uneven, left out


def test_decoded_rows_draw_a_seeded_bounded_sample():
    x = np.arange(100.0).reshape(50, 2)
    sample = decoded_rows(x, 10, seed=1)
    assert sample.shape == (10, 2) and np.array_equal(sample, decoded_rows(x, 10, seed=1))
    assert decoded_rows(x, 80, seed=1) is not None and len(decoded_rows(x, 80, seed=1)) == 50
