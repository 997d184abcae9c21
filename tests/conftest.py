"""Shared fixtures. The Keras backend is the one in $KERAS_BACKEND (tests/all-backends.sh
runs the suite once per backend)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dltoolkit.cli import main

BACKEND = os.environ["KERAS_BACKEND"]

# A tiny, fast version of the cnn-image recipe: the tests check plumbing, not accuracy.
TINY = (
    "--set", "train.epochs=2",
    "--set", "train.verbose=0",
    "--set", "model.filters=[8]",
    "--set", "model.convolutions_per_block=1",
    "--set", "model.dense_units=[16]",
)  # fmt: skip


WORDS = {
    "card": ["card", "charge", "statement", "limit", "café"],
    "loan": ["loan", "payment", "interest", "lender", "Zürich"],
    "mortgage": ["house", "escrow", "mortgage", "foreclosure", "東京"],
}
FILLER = ["the", "my", "they", "said", "account", "bank", "called", "again", "xxxx", "please"]


def texts(rows: int, seed: int = 0) -> pd.DataFrame:
    """Complaint-like texts whose class shows in a few of their words (and non-ASCII)."""
    rng = np.random.default_rng(seed)
    labels = [list(WORDS)[index % len(WORDS)] for index in range(rows)]
    written = []
    for label in labels:
        words = [*rng.choice(FILLER, rng.integers(4, 30)), *rng.choice(WORDS[label], 2)]
        rng.shuffle(words)
        written.append(" ".join(words).capitalize() + "!")
    return pd.DataFrame({"text": written, "label": labels})


TINY_TEXT = (
    "--set", "train.epochs=3", "--set", "train.verbose=0", "--set", "data.split_column=null",
    "--set", "data.text_column=text", "--set", "data.label=label", "--set", "data.max_tokens=24",
    "--set", "model.filters=8", "--set", "model.embedding_dim=8", "--set", "model.kernel_sizes=[2]",
    "--set", "report.explained_texts=2",
)  # fmt: skip


def invoke(*args: str) -> Result:
    """Run ``dltk ARGS`` in-process and return click's result."""
    return CliRunner().invoke(main, list(args), prog_name="dltk", catch_exceptions=False)


def run_recipe_in(folder: Path, recipe: str, *args: str) -> Path:
    """Run ``dltk recipe RECIPE ARGS`` with ``folder`` as the working directory (runs/ and
    saved_models/ go there); assert it succeeded and return its run directory."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        result = invoke("recipe", recipe, *args)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    (run_dir,) = (folder / "runs" / recipe).iterdir()
    return run_dir


def one_line_error(result: Result) -> str:
    """Assert that a command failed with exit code 2 and a one-line message; return it."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder so runs/ and saved_models/ land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny cnn-image run (train, evaluate, export) shared by the tests that read it."""
    root = tmp_path_factory.mktemp("trained")
    previous = Path.cwd()
    os.chdir(root)
    try:
        # Extra metric and checkpoints on: the tests reading this run check both.
        result = invoke(
            "recipe",
            "cnn-image",
            *TINY,
            "--set",
            "train.metrics=[sparse_top_k_categorical_accuracy]",
            "--set",
            "train.checkpoint.enabled=true",
        )
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "runs" / "cnn-image").iterdir()
    return run_dir


def write_image_folder(root: Path, classes: int = 3, per_class: int = 10, size: int = 12) -> Path:
    """A folder of class subfolders of small PNGs; each class has its own brightness."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3)) + 90 * label
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")
    return root


# Module-scoped runs that several tests read: each is trained once per pytest-xdist worker
# that runs one of its tests, so their tests are kept on one worker (``--dist loadgroup``
# in tests/all-backends.sh) and each run is trained once.
SHARED_RUNS = ("segmentation_run", "csv_run", "binary_run", "anomaly_run")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests of each shared module-scoped run onto one xdist worker."""
    for item in items:
        for name in SHARED_RUNS:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))
