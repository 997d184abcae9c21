"""``dltk serve``: TensorFlow Serving's REST API over a model repository, for trying
exported models locally with the requests a TF Serving client sends.

``repository/NAME/VERSION/`` folders hold SavedModels (what ``dltk`` exports). Endpoints:

- ``GET  /v1/models/NAME[/versions/N]``           version status
- ``GET  /v1/models/NAME[/versions/N]/metadata``  the ``serving_default`` signature
- ``POST /v1/models/NAME[/versions/N]:predict``   ``{"instances": [...]}`` (rows) or
  ``{"inputs": ...}`` (columns), answered with ``{"predictions": ...}`` / ``{"outputs": ...}``

The newest loadable version answers by default; the folder is read again on every
request, so a newly exported version is served without a restart. A version that fails to
load is logged once and skipped. Bad requests get a 4xx with ``{"error": "..."}``.
SavedModels are TensorFlow's format, so serving runs on TensorFlow whatever backend
trained the model; the app is Starlette, served by uvicorn.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.errors import DltkError

LOG = logging.getLogger("dltoolkit.serve")
SIGNATURE = "serving_default"


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Servable:
    """One loaded version of a model and its signature's input and output specs."""

    name: str
    version: int
    function: Any
    inputs: dict[str, Any]  # name -> tf.TensorSpec
    outputs: dict[str, Any]
    loaded: Any = None  # the loaded SavedModel, kept alive with its variables


class Repository:
    """The model repository on disk and the versions loaded from it (loaded on first use,
    kept while their folder exists)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], Servable] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()  # guards the two below
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._pending: set[tuple[str, int]] = set()

    def names(self) -> list[str]:
        """Models in the repository (folders with at least one integer version)."""
        if not self.root.is_dir():
            return []
        return sorted(
            child.name
            for child in self.root.iterdir()
            if child.is_dir() and any(v.name.isdigit() for v in child.iterdir())
        )

    def versions(self, name: str) -> list[int]:
        """Version numbers on disk for ``name``, newest first."""
        folder = self.root / name
        if not folder.is_dir() or name.startswith("."):
            return []
        return sorted((int(v.name) for v in folder.iterdir() if v.name.isdigit()), reverse=True)

    def status(self, name: str, version: int | None) -> list[dict[str, Any]]:
        """TF Serving's model_version_status entries."""
        versions = self.versions(name)
        if version is not None:
            versions = [v for v in versions if v == version]
        if not versions:
            raise RequestError(_not_found(name, version), 404)
        entries = []
        for number in versions:
            servable = self._load(name, number)
            error = self._failed.get((name, number), "")
            entries.append({
                "version": str(number),
                "state": "AVAILABLE" if servable is not None else "END",
                "status": {"error_code": "OK" if servable else "UNKNOWN", "error_message": error},
            })  # fmt: skip
        return entries

    def get(self, name: str, version: int | None) -> Servable:
        """The requested version, or the newest one that loads. A newer version found
        while an older one is serving loads in the background, as in TF Serving: the
        older one answers until the newer one is ready."""
        candidates = self.versions(name)
        if version is not None:
            candidates = [v for v in candidates if v == version]
        for position, number in enumerate(candidates):
            key = (name, number)
            older_ready = any((name, v) in self._loaded for v in candidates[position + 1 :])
            if version is None and key not in self._loaded and older_ready:
                if key not in self._failed:
                    self._load_in_background(name, number)
                continue
            servable = self._load(name, number)
            if servable is not None:
                return servable
        raise RequestError(_not_found(name, version), 404)

    def load_all(self) -> None:
        """Load the newest version of every model now, logging the ones that fail."""
        for name in self.names():
            try:
                self.get(name, None)
            except RequestError:
                LOG.error("model %s: no version could be loaded", name)

    def _load_in_background(self, name: str, version: int) -> None:
        with self._lock:
            if (name, version) in self._pending:
                return
            self._pending.add((name, version))

        def load() -> None:
            try:
                self._load(name, version)
            finally:
                with self._lock:
                    self._pending.discard((name, version))

        threading.Thread(target=load, name=f"load {name} {version}", daemon=True).start()

    def _load(self, name: str, version: int) -> Servable | None:
        """The loaded version, loading it first if needed. Each version has its own lock,
        so loading one never holds up requests to the others."""
        key = (name, version)
        folder = self.root / name / str(version)
        if not folder.is_dir():
            self._loaded.pop(key, None)
            return None
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            if key in self._loaded:
                return self._loaded[key]
            if key in self._failed:
                return None
            try:
                servable = _load_saved_model(folder, name, version)
            except Exception as error:  # a corrupt or half-copied folder: skip it, say why
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                self._failed[key] = f"{type(error).__name__}: {reason}"
                LOG.error("model %s version %d at %s not loaded: %s", name, version, folder,
                          self._failed[key])  # fmt: skip
                return None
            self._loaded[key] = servable
            LOG.info("model %s version %d loaded from %s", name, version, folder)
            return servable


def _not_found(name: str, version: int | None) -> str:
    request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return f"Servable not found for request: {request}"


def _load_saved_model(folder: Path, name: str, version: int) -> Servable:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    if SIGNATURE not in loaded.signatures:
        raise ValueError(f"no {SIGNATURE} signature (has {sorted(loaded.signatures)})")
    function = loaded.signatures[SIGNATURE]
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    return Servable(name, version, function, dict(inputs), dict(outputs), loaded)


# === Requests ===


def predict(servable: Servable, body: Any, max_batch: int) -> dict[str, Any]:
    """Answer one :predict body (already parsed JSON)."""
    if not isinstance(body, dict):
        raise RequestError(
            f"the request body must be a JSON object with 'instances' or 'inputs', "
            f"received {type(body).__name__}."
        )
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("the request body must have exactly one of 'instances' or 'inputs'.")
    signature = body.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise RequestError(f"signature {signature!r} not found; this model has {SIGNATURE!r}.")
    rows = "instances" in body
    columns = _rows_to_columns(servable, body["instances"]) if rows else None
    if columns is None:
        columns = _named_columns(servable, body["inputs"])
    tensors = {name: _tensor(servable, name, values, max_batch) for name, values in columns.items()}
    sizes = {len(array) for array in tensors.values()}
    if len(sizes) != 1:
        raise RequestError(f"inputs have different numbers of rows: {sorted(sizes)}.")
    try:
        result = servable.function(**tensors)
    except Exception as error:  # e.g. a shape only the graph checks
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise RequestError(f"the model rejected the input: {message}") from None
    arrays = {name: value.numpy() for name, value in result.items()}
    if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays.values()):
        raise RequestError(
            "the model's output is not finite for these inputs (far outside the range it "
            "was trained on?)."
        )
    outputs = {name: _plain(array) for name, array in arrays.items()}
    if rows:
        count = sizes.pop()
        if len(outputs) == 1:
            (values,) = outputs.values()
            return {"predictions": values}
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(count)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values()))}
    return {"outputs": outputs}


def _rows_to_columns(servable: Servable, instances: Any) -> dict[str, list]:
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list of rows.")
    names = list(servable.inputs)
    if len(names) == 1 and not isinstance(instances[0], dict):
        return {names[0]: instances}
    columns: dict[str, list] = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(
                f"instance {index} must be an object with the inputs {names}, received "
                f"{type(instance).__name__}."
            )
        _check_names(servable, instance, f"instance {index}")
        for name in names:
            columns[name].append(instance[name])
    return columns


def _named_columns(servable: Servable, inputs: Any) -> dict[str, Any]:
    names = list(servable.inputs)
    if not isinstance(inputs, dict) or (len(names) == 1 and names[0] not in inputs):
        if len(names) == 1:
            return {names[0]: inputs}
        raise RequestError(f"'inputs' must be an object with the inputs {names}.")
    _check_names(servable, inputs, "'inputs'")
    return inputs


def _check_names(servable: Servable, given: dict, where: str) -> None:
    expected = set(servable.inputs)
    missing, unknown = sorted(expected - set(given)), sorted(set(given) - expected)
    if missing or unknown:
        raise RequestError(
            f"{where}: missing inputs {missing}, unknown inputs {unknown}; this model takes "
            f"{sorted(expected)}."
        )


def _tensor(servable: Servable, name: str, values: Any, max_batch: int) -> np.ndarray:
    spec = servable.inputs[name]
    if not isinstance(values, list):
        raise RequestError(f"input {name!r} must be a list of rows, received {values!r:.80}.")
    if len(values) > max_batch:
        raise RequestError(
            f"{len(values)} rows in one request; this server takes at most {max_batch} "
            "(dltk serve --max-batch)."
        )
    if not values:
        raise RequestError(f"input {name!r} has no rows.")
    if spec.dtype.name == "string":
        array = np.asarray(values, dtype=object)
        if not all(isinstance(value, str) for value in array.ravel()):
            raise RequestError(f"input {name!r} takes strings.")
        array = array.astype(bytes)
    else:
        array = _numbers(name, values, spec.dtype.as_numpy_dtype, spec.shape.rank == 1)
    expected = spec.shape.as_list()
    if array.ndim != len(expected) or any(
        want is not None and want != got
        for want, got in zip(expected[1:], array.shape[1:], strict=True)
    ):
        shape = ["rows" if d is None else d for d in expected]
        raise RequestError(
            f"input {name!r} has shape {list(array.shape)}; the model expects {shape}."
        )
    return array


def _numbers(name: str, values: list, dtype: Any, scalar_rows: bool) -> np.ndarray:
    """A numeric array; ``null`` is a missing value (NaN) in one-number-per-row inputs
    (table columns, which the exported model imputes), an error elsewhere."""
    array = np.asarray(values, dtype=object)
    for value in array.ravel():
        if value is None and scalar_rows:
            continue
        if isinstance(value, list):
            raise RequestError(f"input {name!r} is ragged: rows of different shapes.")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(
                f"input {name!r} takes numbers, received {value!r:.40} ({type(value).__name__})."
            )
        if not math.isfinite(value):
            raise RequestError(
                f"input {name!r} has a non-finite number ({value}); send finite numbers"
                + (", or null for a missing value." if scalar_rows else ".")
            )
    try:
        with np.errstate(over="raise"):
            filled = np.where(array == None, np.nan, array).astype(dtype)  # noqa: E711
    except (OverflowError, FloatingPointError, ValueError, TypeError):
        raise RequestError(
            f"input {name!r} has a number out of {np.dtype(dtype).name}'s range."
        ) from None
    if not np.isfinite(filled[~np.isnan(filled)]).all():
        raise RequestError(f"input {name!r} has a number out of {np.dtype(dtype).name}'s range.")
    return filled


def _plain(array: np.ndarray) -> Any:
    if array.dtype.kind in ("S", "O"):
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(array).tolist()
    return array.tolist()


def metadata(servable: Servable) -> dict[str, Any]:
    """TF Serving's metadata answer for the serving signature."""
    from tensorflow.core.framework import types_pb2

    def describe(specs: dict[str, Any]) -> dict[str, Any]:
        return {
            name: {
                "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                "tensor_shape": {
                    "dim": [
                        {"size": str(-1 if d is None else d), "name": ""}
                        for d in spec.shape.as_list()
                    ],
                    "unknown_rank": False,
                },
                "name": f"{SIGNATURE}_{name}:0",
            }
            for name, spec in specs.items()
        }

    return {
        "model_spec": {
            "name": servable.name,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {
            "signature_def": {
                "signature_def": {
                    SIGNATURE: {
                        "inputs": describe(servable.inputs),
                        "outputs": describe(servable.outputs),
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }


# === The web app ===


def create_app(repository: str | Path, max_batch: int = 1024, max_body_mb: float = 16.0) -> Any:
    """The Starlette app serving ``repository``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    models = Repository(repository)
    limit = int(max_body_mb * 1024 * 1024)

    def answer(payload: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(payload, status_code=status)

    def target(request: Request) -> tuple[str, int | None, str | None]:
        """(name, version, verb) from /v1/models/NAME[/versions/N][:verb|/metadata]."""
        rest = request.path_params["rest"]
        verb = None
        if ":" in rest:
            rest, verb = rest.rsplit(":", 1)
        parts = rest.split("/")
        if parts and parts[-1] == "metadata" and verb is None:
            verb, parts = "metadata", parts[:-1]
        version = None
        if len(parts) == 3 and parts[1] == "versions":
            if not parts[2].isdigit():
                raise RequestError(f"version {parts[2]!r} is not a number.", 400)
            version = int(parts[2])
        elif len(parts) != 1:
            raise RequestError(f"no such endpoint: {request.url.path}", 404)
        return parts[0], version, verb

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(
                f"request body over {max_body_mb:g} MB (dltk serve --max-body-mb).", 413
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(
                    f"request body over {max_body_mb:g} MB (dltk serve --max-body-mb).", 413
                )
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RequestError(f"malformed JSON: {error}") from None

    async def get(request: Request) -> JSONResponse:
        try:
            name, version, verb = target(request)
            if verb == "metadata":
                servable = await run_in_threadpool(models.get, name, version)
                return answer(metadata(servable))
            if verb is not None:
                raise RequestError(f"GET does not take :{verb}; POST :predict.", 405)
            status = await run_in_threadpool(models.status, name, version)
            return answer({"model_version_status": status})
        except RequestError as error:
            return answer({"error": str(error)}, error.status)

    async def post(request: Request) -> JSONResponse:
        try:
            name, version, verb = target(request)
            if verb != "predict":
                raise RequestError(f"unsupported verb {verb!r}; this server answers :predict.", 404)
            body = await read_json(request)
            servable = await run_in_threadpool(models.get, name, version)
            return answer(await run_in_threadpool(predict, servable, body, max_batch))
        except RequestError as error:
            return answer({"error": str(error)}, error.status)

    async def missing(request: Request, exc: Exception) -> JSONResponse:
        return answer({"error": f"no such endpoint: {request.method} {request.url.path}"}, 404)

    routes = [
        Route("/v1/models/{rest:path}", get, methods=["GET"]),
        Route("/v1/models/{rest:path}", post, methods=["POST"]),
    ]

    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 404)
        return answer({"error": f"{request.method} {request.url.path}: {exc}"}, status)

    app = Starlette(routes=routes, exception_handlers={404: missing, 405: not_allowed})
    app.state.repository = models
    return app


def serve(repository: str | Path, host: str, port: int, max_batch: int, max_body_mb: float) -> None:
    """Serve ``repository`` until interrupted."""
    import uvicorn

    if not Path(repository).is_dir():
        raise DltkError(
            f"model repository {repository!r} is not a folder; export a model first "
            "(dltk recipe ... writes saved_models/) or pass the right path."
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(repository, max_batch, max_body_mb)
    app.state.repository.load_all()
    names = app.state.repository.names()
    LOG.info("serving %s from %s on http://%s:%d", ", ".join(names) or "no models yet",
             repository, host, port)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning")
