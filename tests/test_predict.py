"""dltk predict: chunked reading keeps memory bounded and gives the same rows as one pass."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import invoke, one_line_error

from dltoolkit.config import DataConfig
from dltoolkit.predict import image_inputs, npz_inputs


def predict(run: Path, source: str, output: Path, *args: str) -> pd.DataFrame:
    result = invoke("predict", str(run), "--data", source, "--output", str(output), *args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(output)


def test_chunked_predictions_equal_one_pass(trained_run: Path, workdir: Path):
    from sklearn.datasets import load_digits

    images = load_digits().images[:50]
    np.savez_compressed(workdir / "digits.npz", x=images)
    whole = predict(trained_run, "npz:digits.npz", workdir / "whole.csv")
    chunked = predict(trained_run, "npz:digits.npz", workdir / "chunked.csv", "--chunk-rows", "7")
    assert len(chunked) == 50 and list(chunked["id"]) == list(range(50))
    pd.testing.assert_frame_equal(whole, chunked, rtol=1e-6, atol=1e-6)
    # A Fortran-ordered array is read whole but predicted the same.
    np.savez(workdir / "fortran.npz", x=np.asfortranarray(images))
    fortran = predict(trained_run, "npz:fortran.npz", workdir / "f.csv", "--chunk-rows", "7")
    pd.testing.assert_frame_equal(whole, fortran, rtol=1e-6, atol=1e-6)
    assert sorted(path.name for path in workdir.iterdir() if path.name.startswith(".")) == []


def test_npz_rows_are_read_without_loading_the_array(tmp_path: Path):
    rows = 120_000
    x = np.random.default_rng(0).random((rows, 64), dtype=np.float32)  # 31 MB
    path = tmp_path / "big.npz"
    np.savez(path, x=x)
    expected_sum = float(x.sum(dtype=np.float64))
    del x
    tracemalloc.start()
    try:
        stream = npz_inputs(str(path), chunk_rows=1000)
        total, count = 0.0, 0
        for chunk in stream.chunks:
            assert len(chunk.x) <= 1000 and chunk.x.shape[1:] == (64,)
            total += float(chunk.x.sum(dtype=np.float64))
            count += chunk.progress
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.total == rows and count == rows
    assert total == pytest.approx(expected_sum, rel=1e-9)
    assert peak < 4_000_000, f"reading in chunks of 1,000 rows peaked at {peak:,} bytes"


def test_image_folders_are_decoded_a_chunk_at_a_time(tmp_path: Path):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", classes=2, per_class=5, size=8)
    stream = image_inputs(str(folder), DataConfig(image_size=[8, 8]), chunk_rows=3)
    sizes = [len(chunk.x) for chunk in stream.chunks]
    assert stream.total == 10 and sizes == [3, 3, 3, 1]


def test_a_failed_prediction_leaves_no_output(trained_run: Path, workdir: Path):
    np.savez(workdir / "text.npz", x=np.array([["a", "b"]]))
    message = one_line_error(
        invoke("predict", str(trained_run), "--data", "npz:text.npz", "--output", "p.csv")
    )
    assert "x has dtype <U1, expected numbers" in message
    np.savez(workdir / "labels.npz", y=np.zeros(3))
    message = one_line_error(
        invoke("predict", str(trained_run), "--data", "npz:labels.npz", "--output", "p.csv")
    )
    assert "has arrays ['y'], missing ['x']" in message
    assert sorted(path.name for path in workdir.iterdir()) == ["labels.npz", "text.npz"]
