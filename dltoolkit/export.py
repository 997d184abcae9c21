"""SavedModel export into a TF Serving model repository: ``<repository>/<name>/<version>/``.

Versions are integers; each export takes the next free one. The SavedModel is written into
a hidden temporary folder beside the versions and renamed into place, so TF Serving (which
only loads integer-named folders) never sees a half-written version.

Writing a SavedModel is TensorFlow's job. Keras' own export runs on the TensorFlow backend
(the torch backend's fails), so when the training process uses another backend the model
is re-loaded from its ``.keras`` file under TensorFlow in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dltoolkit.errors import DltkError

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(name: str) -> str:
    """Model names become URL path segments in TF Serving: letters, digits, ``_.-`` only."""
    if not _MODEL_NAME.match(name):
        raise DltkError(
            f"model name {name!r} is not usable in a model repository; use letters, digits, "
            "'_', '.' and '-' only (e.g. --name cnn-image)."
        )
    return name


def existing_versions(model_dir: Path) -> list[int]:
    """Integer version folders present under a model folder, sorted."""
    if not model_dir.is_dir():
        return []
    return sorted(int(child.name) for child in model_dir.iterdir() if child.name.isdigit())


def export_saved_model(
    keras_path: str | Path,
    repository: str | Path,
    model_name: str,
    class_names: list[str] | None = None,
) -> Path:
    """Export a ``.keras`` classifier as the next version of ``repository/model_name``.

    The ``serving_default`` signature takes the model's named input and returns
    ``probabilities``, ``class_id`` and ``class_name``.

    Args:
        keras_path: the trained model's ``.keras`` file.
        repository: model repository root (``saved_models``).
        model_name: folder name of the model in the repository.
        class_names: names of the classes, in class-index order (default: "0", "1", ...).

    Returns:
        The version folder written.
    """
    check_model_name(model_name)
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise DltkError(f"model file {str(keras_path)!r} does not exist.")
    import keras

    if keras.backend.backend() == "tensorflow":
        return _export_here(keras_path, Path(repository), model_name, class_names)
    return _export_in_tensorflow_process(keras_path, Path(repository), model_name, class_names)


def _export_in_tensorflow_process(
    keras_path: Path, repository: Path, model_name: str, class_names: list[str] | None
) -> Path:
    command = [
        sys.executable,
        "-m",
        "dltoolkit.export",
        str(keras_path),
        str(repository),
        model_name,
        "--class-names",
        json.dumps(class_names),
    ]
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DltkError(f"SavedModel export under TensorFlow failed: {detail}")
    return Path(result.stdout.strip().splitlines()[-1])


def _export_here(
    keras_path: Path, repository: Path, model_name: str, class_names: list[str] | None
) -> Path:
    import keras
    import tensorflow as tf

    import dltoolkit.layers  # noqa: F401  registers the toolkit's custom layers for loading

    model = keras.saving.load_model(keras_path, safe_mode=True)
    input_tensor = model.inputs[0]
    num_classes = int(model.outputs[0].shape[-1])
    names = class_names or [str(index) for index in range(num_classes)]
    if len(names) != num_classes:
        raise DltkError(f"{len(names)} class names given for a model with {num_classes} outputs.")
    name_table = tf.constant(names)
    input_name = getattr(input_tensor, "name", None) or "inputs"

    def serve(inputs):
        probabilities = model(inputs, training=False)
        class_id = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "class_name": tf.gather(name_table, class_id),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec(tuple(input_tensor.shape), tf.float32, name=input_name)],
    )
    model_dir = repository / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".export-", dir=model_dir))
    try:
        archive.write_out(str(temporary), verbose=False)
        return _publish(temporary, model_dir)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _publish(temporary: Path, model_dir: Path) -> Path:
    """Rename a finished export to the next free version; retry if another export won."""
    for _ in range(100):
        versions = existing_versions(model_dir)
        target = model_dir / str((versions[-1] + 1) if versions else 1)
        try:
            # os.rename onto an existing folder fails, so a version is never overwritten.
            os.rename(temporary, target)
        except OSError:
            if target.exists():
                continue
            raise
        return target
    raise DltkError(f"could not find a free version number under {model_dir}.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the TensorFlow child process used by non-TensorFlow backends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keras_path")
    parser.add_argument("repository")
    parser.add_argument("model_name")
    parser.add_argument("--class-names", default="null")
    arguments = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    try:
        path = export_saved_model(
            arguments.keras_path,
            arguments.repository,
            arguments.model_name,
            json.loads(arguments.class_names),
        )
    except DltkError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
    print(path)


if __name__ == "__main__":
    main()
