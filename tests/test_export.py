import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import invoke, one_line_error

# Runs in a fresh interpreter that imports TensorFlow only: this is what a serving client sees.
SERVE_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
serve = model.signatures["serving_default"]
x = np.load(sys.argv[2])["x"]
outputs = serve(image=tf.constant(x))
print(json.dumps({
    "inputs": list(serve.structured_input_signature[1]),
    "outputs": sorted(outputs),
    "probabilities": outputs["probabilities"].numpy().tolist(),
    "class_id": outputs["class_id"].numpy().tolist(),
    "class_name": [name.decode() for name in outputs["class_name"].numpy()],
    "dltoolkit_imported": "dltoolkit" in sys.modules,
}))
"""


def test_saved_model_reproduces_keras_predictions_in_a_fresh_process(
    trained_run: Path, tmp_path: Path
):
    from sklearn.datasets import load_digits

    from dltoolkit.evaluation import load_model

    metrics = json.loads((trained_run / "metrics.json").read_text())
    version_dir = Path(trained_run.parent.parent.parent / metrics["export"]["path"])
    assert version_dir.parent.name == "cnn-image" and version_dir.name.isdigit()
    x = load_digits().images[:64, :, :, None].astype("float32")
    np.savez(tmp_path / "x.npz", x=x)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(version_dir), str(tmp_path / "x.npz")],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["dltoolkit_imported"] is False
    assert served["inputs"] == ["image"]
    assert served["outputs"] == ["class_id", "class_name", "probabilities"]
    expected = np.asarray(load_model(trained_run / "model.keras").predict(x, verbose=0))
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5, rtol=0)
    assert served["class_id"] == expected.argmax(axis=-1).tolist()
    assert served["class_name"] == [str(i) for i in served["class_id"]]


def test_saved_model_cli_lists_the_serving_signature(trained_run: Path):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    version_dir = trained_run.parent.parent.parent / metrics["export"]["path"]
    tool = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent))
    assert tool is not None
    result = subprocess.run(
        [tool, "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert "signature_def['serving_default']" in result.stdout
    assert "inputs['image']" in result.stdout
    assert "outputs['probabilities']" in result.stdout


def test_export_takes_the_next_free_version_and_never_overwrites(trained_run: Path, tmp_path: Path):
    repository = tmp_path / "repo"
    (repository / "digits" / "3").mkdir(parents=True)
    (repository / "digits" / "3" / "keep.txt").write_text("existing version")
    (repository / "digits" / "not-a-version").mkdir()
    result = invoke("export", str(trained_run), "--name", "digits", "--repository", str(repository))
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(str(Path("digits") / "4"))
    assert (repository / "digits" / "4" / "saved_model.pb").is_file()
    assert (repository / "digits" / "3" / "keep.txt").read_text() == "existing version"
    result = invoke(
        "export", str(trained_run / "model.keras"), "--name", "digits",
        "--repository", str(repository),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (repository / "digits" / "5" / "saved_model.pb").is_file()
    # No temporary export folder is left behind.
    assert sorted(p.name for p in (repository / "digits").iterdir()) == [
        "3", "4", "5", "not-a-version",
    ]  # fmt: skip


def test_export_rejects_a_bad_model_name(trained_run: Path, tmp_path: Path):
    message = one_line_error(
        invoke("export", str(trained_run), "--name", "../x", "--repository", str(tmp_path))
    )
    assert "model name '../x'" in message
    assert list(tmp_path.iterdir()) == []
