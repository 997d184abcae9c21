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
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dltoolkit import features
from dltoolkit.config.checks import check_model_name
from dltoolkit.data.text import TextTokenizer
from dltoolkit.data.tokenizers import saved_tokenizer
from dltoolkit.errors import DltkError
from dltoolkit.models import load_model
from dltoolkit.tasks import task_class


def existing_versions(model_dir: Path) -> list[int]:
    """Integer version folders present under a model folder, sorted."""
    if not model_dir.is_dir():
        return []
    return sorted(int(child.name) for child in model_dir.iterdir() if child.name.isdigit())


def serving_head(written: dict[str, Any]) -> dict[str, Any]:
    """What the serving signature needs from a run's metrics.json (``{}`` for a bare model
    file): its task, class names, decision and, for a series, its window."""
    data = written.get("data", {})
    return {
        "task": written.get("task", "classification"),
        "class_names": data.get("class_names"),
        "decision": written.get("decision") or {},
        "series": data.get("series") or {},
        "scorecard": written.get("scorecard"),
    }


def export_saved_model(
    keras_path: str | Path,
    repository: str | Path,
    model_name: str,
    head: dict[str, Any] | None = None,
) -> Path:
    """Export a trained ``.keras`` model as the next version of ``repository/model_name``.

    The ``serving_default`` signature takes the model's named input (for a table: one
    input per raw feature column, run through the ``features.keras`` FeatureSpace saved
    beside the model, missing numbers filled with the training medians; for texts: one
    ``text`` input of raw strings, tokenised as in training by the tokenizer saved
    beside the model, ``text.json``) and returns the
    task's named outputs (its ``serving_outputs``), for example: ``probabilities``,
    ``class_id``, ``class_name`` (classification); ``probability``, ``class_id``,
    ``class_name`` at the chosen threshold (binary; and scorecard ``points`` where the run
    has a scorecard); ``prediction`` (regression);
    ``segment`` and ``segment_probabilities`` (clustering); ``anomaly_score``, and
    ``class_id``, ``class_name`` at the chosen score threshold (anomaly); ``log_return``
    and ``price`` over the horizon, or ``variance`` and ``volatility`` (forecasting);
    ``probability`` of an up day and ``signal`` (signal). Series models take one raw
    ``window`` of rows.

    Args:
        keras_path: the trained model's ``.keras`` file.
        repository: model repository root (``saved_models``).
        model_name: folder name of the model in the repository.
        head: what the run wrote that serving needs (:func:`serving_head` of its
            metrics.json); by default a classifier with classes "0", "1", ...

    Returns:
        The version folder written.
    """
    check_model_name(model_name)
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise DltkError(f"model file {str(keras_path)!r} does not exist.")
    import keras

    head = serving_head({}) | (head or {})
    if keras.backend.backend() == "tensorflow":
        return _export_here(keras_path, Path(repository), model_name, head)
    return _export_in_tensorflow_process(keras_path, Path(repository), model_name, head)


def _export_in_tensorflow_process(
    keras_path: Path, repository: Path, model_name: str, head: dict[str, Any]
) -> Path:
    command = [
        sys.executable,
        "-m",
        "dltoolkit.export",
        str(keras_path),
        str(repository),
        model_name,
        "--head",
        json.dumps(head),
    ]
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DltkError(f"SavedModel export under TensorFlow failed: {detail}")
    return Path(result.stdout.strip().splitlines()[-1])


def _export_here(keras_path: Path, repository: Path, model_name: str, head: dict[str, Any]) -> Path:
    import keras
    import tensorflow as tf

    model = load_model(keras_path)
    saved_features = features.load(keras_path.parent)
    tokenizer = saved_tokenizer(keras_path.parent)
    tracked: list[Any] = []
    if tokenizer is not None:
        signature, prepare, encoder = _text_inputs(tokenizer)
        tracked.append(encoder)
    elif saved_features is not None:
        space, info = saved_features
        signature, prepare = _table_inputs(space, info)
        tracked.append(space)
    else:
        input_tensor = model.inputs[0]
        name = getattr(input_tensor, "name", None) or "inputs"
        signature = {name: tf.TensorSpec(tuple(input_tensor.shape), tf.float32, name=name)}

        def prepare(inputs):
            return inputs[name]

    outputs = task_class(head["task"]).serving_outputs(model, head)

    def serve(inputs):
        prepared = prepare(inputs)
        return outputs(model(prepared, training=False), prepared)

    archive = keras.export.ExportArchive()
    archive.track(model)
    for item in tracked:
        archive.track(item)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[signature])
    model_dir = repository / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned_exports(model_dir)
    temporary = Path(tempfile.mkdtemp(prefix=_export_prefix(os.getpid()), dir=model_dir))
    try:
        archive.write_out(str(temporary), verbose=False)
        modules = list(tokenizer.op_modules) if tokenizer is not None else []
        _write_serving_facts(temporary, head, saved_features, modules)
        return _publish(temporary, model_dir)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _write_serving_facts(
    folder: Path, head: dict[str, Any], saved_features: Any, op_modules: list[str]
) -> None:
    """What a server reads beside the SavedModel (``assets.extra/``, which TF Serving
    leaves alone): the class names, the inputs whose missing numbers the model fills (a
    server refuses ``null`` in the others), and the Python modules whose TensorFlow ops
    the graph uses (``tensorflow_text`` for a keras-hub tokenizer), to import before
    loading it."""
    imputed = sorted(saved_features[1]["medians"]) if saved_features is not None else []
    facts = {"task": head["task"], "class_names": head.get("class_names"),
             "imputed_inputs": sorted({*imputed, *map(serving_name, imputed)}),
             "op_modules": op_modules}  # fmt: skip
    extra = folder / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / "dltoolkit.json").write_text(json.dumps(facts, indent=2))


def _table_inputs(space: Any, info: dict[str, Any]) -> tuple[dict, Callable]:
    """One serving input per raw column; numbers' NaNs become the training medians."""
    import tensorflow as tf

    signature = {}
    for column in info["numeric"]:
        signature[column] = tf.TensorSpec((None,), tf.float32, name=serving_name(column))
    for column in info["categorical"]:
        signature[column] = tf.TensorSpec((None,), tf.string, name=serving_name(column))
    medians = info["medians"]

    def prepare(inputs):
        columns = dict(inputs)
        for column, median in medians.items():
            value = columns[column]
            columns[column] = tf.where(
                tf.math.is_nan(value), tf.constant(median, value.dtype), value
            )
        return space(columns)

    return signature, prepare


def _text_inputs(tokenizer: TextTokenizer) -> tuple[dict, Callable, Any]:
    """One serving input ``text`` of raw strings, tokenised by the run's tokenizer."""
    import tensorflow as tf

    layer, tokenise = tokenizer.serving()
    signature = {"text": tf.TensorSpec((None,), tf.string, name="text")}
    return signature, lambda inputs: tokenise(inputs["text"]), layer


def serving_name(column: str) -> str:
    """A column name as a SavedModel input name (letters, digits, ``_.-`` only)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", column)
    return cleaned if re.match(r"[A-Za-z0-9.]", cleaned) else f"f{cleaned}"


def _export_prefix(pid: int) -> str:
    """Hidden name of an export in progress: the host and process that write it."""
    return f"{_host_prefix()}{pid}-"


def _host_prefix() -> str:
    return f".export-{socket.gethostname()}-"


def remove_abandoned_exports(model_dir: Path) -> list[Path]:
    """Delete the hidden folders of exports whose process (on this host) has died, e.g.
    one killed mid-write; exports of live processes and of other hosts are left alone."""
    removed = []
    for folder in model_dir.glob(f"{_host_prefix()}*"):
        pid = folder.name.removeprefix(_host_prefix()).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


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
    parser.add_argument("--head", default='{"task": "classification"}')
    arguments = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"
    try:
        head = json.loads(arguments.head)
        path = export_saved_model(
            arguments.keras_path, arguments.repository, arguments.model_name, head
        )
    except DltkError as error:
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
    print(path)


if __name__ == "__main__":
    main()
