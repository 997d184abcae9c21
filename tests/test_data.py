import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folder

from dltoolkit.config import DataConfig
from dltoolkit.data import load_dataset, load_labelled, load_unlabelled, parse_source
from dltoolkit.errors import DataError

# Configuration, data loading and files: the same whatever the Keras backend.
pytestmark = pytest.mark.backend_neutral


def test_builtin_digits_loads_offline():
    data = load_labelled(DataConfig(source="builtin:digits"))
    assert data.x.shape == (1797, 8, 8, 1)
    assert data.x.dtype == np.float32
    assert data.class_names == [str(i) for i in range(10)]


def test_split_is_deterministic_stratified_and_disjoint():
    config = DataConfig(source="builtin:digits")
    first, second = load_dataset(config, seed=3), load_dataset(config, seed=3)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    other = load_dataset(config, seed=4)
    assert not np.array_equal(first.y_test, other.y_test)
    assert sum(first.sizes().values()) == 1797
    assert first.sizes()["test"] == round(1797 * 0.15)
    # Stratified: each class's share of the test split matches its share overall.
    overall = np.bincount(load_labelled(config).y) / 1797
    test_share = np.bincount(first.y_test, minlength=10) / len(first.y_test)
    assert np.abs(overall - test_share).max() < 0.02
    # Disjoint: no training image reappears in the test split.
    train_rows = {row.tobytes() for row in first.x_train}
    unique_test = [row for row in first.x_test if row.tobytes() not in train_rows]
    assert len(unique_test) >= len(first.x_test) - 2  # digits holds a few exact duplicates


def test_npz_with_string_labels_and_grey_images(tmp_path: Path):
    path = tmp_path / "data.npz"
    x = np.random.default_rng(0).random((12, 5, 5))
    y = np.array(["cat", "dog", "eel"] * 4)
    np.savez(path, x=x, y=y)
    data = load_labelled(DataConfig(source=f"npz:{path}"))
    assert data.x.shape == (12, 5, 5, 1)
    assert data.class_names == ["cat", "dog", "eel"]
    assert list(data.y[:3]) == [0, 1, 2]
    inputs, identifiers = load_unlabelled(f"npz:{path}", DataConfig())
    assert inputs.shape == (12, 5, 5, 1) and identifiers[0] == "0"


def test_image_folder_loads_classes_and_resizes(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=3, per_class=4, size=12)
    data = load_labelled(DataConfig(source=f"images:{folder}", image_size=[6, 6]))
    assert data.x.shape == (12, 6, 6, 3)
    assert data.class_names == ["class_0", "class_1", "class_2"]
    assert np.bincount(data.y).tolist() == [4, 4, 4]
    grey = load_labelled(
        DataConfig(source=f"images:{folder}", image_size=[6, 6], color_mode="grayscale")
    )
    assert grey.x.shape == (12, 6, 6, 1)
    inputs, identifiers = load_unlabelled(f"images:{folder}", DataConfig(image_size=[6, 6]))
    assert inputs.shape == (12, 6, 6, 3)
    assert identifiers[0].endswith("class_0/0.png")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("digits", "is not of the form KIND:LOCATION"),
        ("imgs:x", "unknown data source kind 'imgs' in 'imgs:x' (did you mean \"images\"?)"),
        ("builtin:digts", "unknown builtin dataset 'digts' (did you mean \"digits\"?)"),
        ("images:/no/such/folder", "image folder '/no/such/folder' does not exist"),
        ("npz:/no/such/file.npz", "npz file '/no/such/file.npz' does not exist"),
    ],
)
def test_bad_sources_get_one_line_errors(source, expected):
    with pytest.raises(DataError) as error:
        load_labelled(DataConfig(source=source))
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_image_folder_without_class_subfolders(tmp_path: Path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "flat.png")
    with pytest.raises(DataError, match="has no class subfolders"):
        parse_source(f"images:{tmp_path}")
        load_labelled(DataConfig(source=f"images:{tmp_path}"))


def test_unreadable_image_is_named(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=2, per_class=3)
    broken = folder / "class_1" / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(DataError) as error:
        load_labelled(DataConfig(source=f"images:{folder}"))
    assert str(broken) in str(error.value)


def test_empty_class_subfolder(tmp_path: Path):
    folder = write_image_folder(tmp_path / "images", classes=2, per_class=3)
    (folder / "class_empty").mkdir()
    with pytest.raises(DataError, match=r"\['class_empty'\] hold no"):
        load_labelled(DataConfig(source=f"images:{folder}"))


def test_npz_problems(tmp_path: Path):
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"missing \['y'\]"):
        load_labelled(DataConfig(source=f"npz:{no_y}"))
    not_npz = tmp_path / "junk.npz"
    not_npz.write_text("junk")
    with pytest.raises(DataError, match=r"not a readable \.npz archive"):
        load_labelled(DataConfig(source=f"npz:{not_npz}"))
    with_nan = tmp_path / "nan.npz"
    np.savez(with_nan, x=np.full((9, 3), np.nan), y=np.arange(9) % 3)
    with pytest.raises(DataError, match="NaN or infinite"):
        load_labelled(DataConfig(source=f"npz:{with_nan}"))
    one_class = tmp_path / "one.npz"
    np.savez(one_class, x=np.zeros((9, 3)), y=np.zeros(9))
    with pytest.raises(DataError, match="has 1 class"):
        load_labelled(DataConfig(source=f"npz:{one_class}"))


def test_empty_prediction_input(tmp_path: Path):
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 8, 8)))
    with pytest.raises(DataError, match="holds no examples to predict"):
        load_unlabelled(f"npz:{path}", DataConfig())


def test_too_few_examples_per_class_for_a_split(tmp_path: Path):
    path = tmp_path / "small.npz"
    np.savez(path, x=np.zeros((7, 3)), y=np.array([0, 0, 0, 0, 0, 0, 1]))
    with pytest.raises(DataError, match="class '1' has 1 example"):
        load_dataset(DataConfig(source=f"npz:{path}"), seed=0)


def test_tfds_dataset_that_is_not_prepared_is_not_downloaded(tmp_path: Path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match=r"is not prepared .* will not be downloaded"):
        load_labelled(DataConfig(source="tfds:mnist", data_dir=str(tmp_path)))


def test_tfds_prepared_dataset_loads(tmp_path: Path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    def split(count: int):
        images = np.stack([np.full((4, 4, 1), index * 10, np.uint8) for index in range(count)])
        labels = np.arange(count) % 3
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_shapes",
        version="1.0.0",
        split_datasets={"train": split(12), "test": split(6)},
        features=tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(4, 4, 1)),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
            }
        ),
        data_dir=str(tmp_path),
    )
    data = load_labelled(DataConfig(source="tfds:tiny_shapes", data_dir=str(tmp_path)))
    assert data.x.shape == (18, 4, 4, 1)
    assert data.class_names == ["a", "b", "c"]
    assert np.bincount(data.y).tolist() == [6, 6, 6]
    # Streamed: decoded once by as_dataset into rows in the cache folder, split alike.
    source, cache = "tfds:tiny_shapes", str(tmp_path / "cache")
    whole = load_dataset(DataConfig(source=source, data_dir=str(tmp_path), cache="memory"), 0)
    config = DataConfig(source=source, data_dir=str(tmp_path), cache="disk", cache_dir=cache)
    streamed = load_dataset(config, 0)
    assert streamed.x_train.shape == whole.x_train.shape and streamed.x_train.cache == "disk"
    np.testing.assert_array_equal(streamed.x_train.read(), whole.x_train)
    np.testing.assert_array_equal(streamed.y_test, whole.y_test)
    assert streamed.class_names == ["a", "b", "c"]
    (rows,) = (tmp_path / "cache").glob("tfds-*/x.raw")
    assert rows.stat().st_size == 18 * 16  # the dataset's own uint8 pixels
    config.image_size = [6, 6]  # resized: another cache entry, float32 rows
    resized = load_dataset(config, 0)
    assert resized.x_train.shape[1:] == (6, 6, 1) and resized.x_train.stored == np.float32


def test_a_streamed_npz_splits_as_in_memory_from_the_archive_or_its_decompressed_copy(
    tmp_path: Path,
):
    from sklearn.datasets import load_digits

    from dltoolkit.data.rows import EncodedRows

    digits = load_digits()
    np.savez(tmp_path / "stored.npz", x=digits.images, y=digits.target)  # float64 rows
    np.savez_compressed(tmp_path / "packed.npz", x=digits.images.astype(np.uint8), y=digits.target)
    whole = load_dataset(DataConfig(source=f"npz:{tmp_path / 'stored.npz'}", cache="memory"), 0)
    cache = tmp_path / "cache"
    for name in ("stored", "packed"):
        config = DataConfig(source=f"npz:{tmp_path / name}.npz", cache="disk", cache_dir=str(cache))
        streamed = load_dataset(config, 0)
        assert isinstance(streamed.x_train, EncodedRows)
        assert streamed.x_train.shape == whole.x_train.shape == (1257, 8, 8, 1)
        np.testing.assert_array_equal(streamed.x_test.read(), whole.x_test)
        np.testing.assert_array_equal(streamed.y_train, whole.y_train)
        x, y = next(iter(streamed.x_train.batches(64, streamed.y_train, shuffle_seed=1)))
        assert x.shape == (64, 8, 8, 1) and x.dtype == "float32" and y.shape == (64,)
    # The stored archive is read where it lies; the compressed one once decompressed.
    (copy,) = cache.glob("npz-*/x.raw")
    written = copy.stat().st_mtime_ns
    config = DataConfig(source=f"npz:{tmp_path / 'packed.npz'}", cache="disk", cache_dir=str(cache))
    load_dataset(config, 0)
    assert copy.stat().st_mtime_ns == written  # reused, not decompressed again
    assert not list(cache.glob("*.partial"))


def test_a_streamed_npz_names_its_first_bad_row_and_refuses_column_major_rows(tmp_path: Path):
    x = np.zeros((30, 4))
    x[17, 2] = np.inf
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(30) % 3)
    np.savez_compressed(tmp_path / "bad_packed.npz", x=x, y=np.arange(30) % 3)
    for name in ("bad", "bad_packed"):
        source = f"npz:{tmp_path / name}.npz"
        with pytest.raises(DataError, match=r"NaN or infinite value in row 17 of x"):
            load_dataset(DataConfig(source=source, cache="none", cache_dir=str(tmp_path)), 0)
    assert not list(tmp_path.glob("npz-*"))  # a failed decompression leaves nothing
    np.savez(tmp_path / "fortran.npz", x=np.asfortranarray(np.zeros((30, 4))), y=np.arange(30) % 3)
    with pytest.raises(DataError, match=r"column-major.*np\.ascontiguousarray"):
        load_dataset(DataConfig(source=f"npz:{tmp_path / 'fortran.npz'}", cache="none"), 0)


def test_a_streamed_npz_trains_and_evaluates(tmp_path: Path):
    from conftest import invoke
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=digits.images.astype(np.uint8), y=digits.target)
    result = invoke(
        "recipe", "cnn-image", "--data", f"npz:{tmp_path / 'digits.npz'}",
        "--set", "data.cache=none", "--set", "train.epochs=1", "--output", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert metrics["data"]["sizes"] == {"train": 1257, "validation": 270, "test": 270}
    assert metrics["test"]["accuracy"] > 0.3  # one epoch from the streamed rows learns
