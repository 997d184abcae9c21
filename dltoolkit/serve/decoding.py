"""Request bodies to input arrays and output arrays to answers, for REST (JSON) and gRPC
(TensorProtos) alike.

Nothing reaches the model before it has passed the limits (:class:`Limits`): the body's
size, its JSON nesting depth and the length of its integer literals are checked while it
is parsed; every value is checked against the signature's dtype and shape, and a bad one
is named by where it is (``instances[3].amount``). Text is UTF-8 (any language; an
unpaired surrogate is refused).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from dltoolkit.serve.errors import RequestError
from dltoolkit.serve.repository import SIGNATURE, Servable

PREDICT_KEYS = {"instances", "inputs", "signature_name"}
EXAMPLE_KEYS = {"examples", "context", "signature_name"}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_STEPS = np.zeros(256, np.int8)  # +1 for [ and {, -1 for ] and }
_BRACKET_STEPS[[ord("["), ord("{")]] = 1
_BRACKET_STEPS[[ord("]"), ord("}")]] = -1


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a request may hold; the server's command-line options set them."""

    max_rows: int = 1024
    max_body_bytes: int = 16 * 1024 * 1024
    max_depth: int = 32
    max_digits: int = 40

    def body_too_large(self) -> RequestError:
        """The error for a body over ``max_body_bytes``."""
        megabytes = self.max_body_bytes / (1024 * 1024)
        return RequestError(f"request body over {megabytes:g} MB (dltk serve --max-body-mb).", 413)

    def check_rows(self, rows: int, where: str) -> None:
        """Refuse a request with no rows or more than ``max_rows``."""
        if rows == 0:
            raise RequestError(f"{where} has no rows.")
        if rows > self.max_rows:
            raise RequestError(
                f"{where} has {rows} rows; this server takes at most {self.max_rows} in one "
                "request (dltk serve --max-batch).",
                413,
            )


# === JSON ===


def parse_json(body: bytes, limits: Limits) -> Any:
    """The parsed body, or a 400 saying what is wrong with it."""
    if len(body) > limits.max_body_bytes:
        raise limits.body_too_large()
    depth = nesting_depth(body)
    if depth > limits.max_depth:
        raise RequestError(f"JSON nested {depth} levels deep; this server takes at most "
                           f"{limits.max_depth}.")  # fmt: skip
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            f"the body is not UTF-8 text ({error.reason} at byte {error.start})."
        ) from None
    try:
        return json.loads(text, parse_int=functools.partial(_integer, limits.max_digits))
    except json.JSONDecodeError as error:
        raise RequestError(f"malformed JSON: {error}") from None
    except RecursionError:  # deeper than the depth check saw (it skips nothing real)
        raise RequestError("JSON nested too deeply.") from None


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings skipped)."""
    if b"[" not in body and b"{" not in body:
        return 0
    codes = np.frombuffer(_STRING.sub(b"", body) if b'"' in body else body, np.uint8)
    return int(np.cumsum(_BRACKET_STEPS[codes], dtype=np.int32).max(initial=0))


def _integer(max_digits: int, text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > max_digits:
        raise RequestError(
            f"a {digits}-digit integer literal; this server reads integers of at most "
            f"{max_digits} digits."
        )
    return int(text)


# === Bodies to arrays ===


def predict_inputs(servable: Servable, body: Any, limits: Limits) -> tuple[dict, bool]:
    """``({input name: array}, rows)`` from a :predict body; ``rows`` is True for the
    ``instances`` (row) format, False for ``inputs`` (columns)."""
    _check_body(body, PREDICT_KEYS, ("instances", "inputs"))
    if "instances" in body:
        return _from_rows(servable, body["instances"], "instances", limits), True
    return _from_columns(servable, body["inputs"], limits), False


def example_inputs(servable: Servable, body: Any, limits: Limits) -> dict[str, np.ndarray]:
    """Input arrays from a :classify or :regress body: ``examples`` (feature objects) and
    an optional ``context`` object of features shared by every example."""
    _check_body(body, EXAMPLE_KEYS, ("examples",))
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise RequestError(f"'context' must be an object of features, received "
                           f"{_kind(context)}.")  # fmt: skip
    examples = body["examples"]
    if not isinstance(examples, list):
        raise RequestError(f"'examples' must be a list of objects, received {_kind(examples)}.")
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise RequestError(f"examples[{index}] must be an object of features, received "
                               f"{_kind(example)}.")  # fmt: skip
    merged = [{**context, **example} for example in examples]
    return _from_rows(servable, merged, "examples", limits, named=True)


def _check_body(body: Any, allowed: set[str], one_of: tuple[str, ...]) -> None:
    if not isinstance(body, dict):
        raise RequestError(
            f"the request body must be a JSON object with {' or '.join(map(repr, one_of))}, "
            f"received {_kind(body)}."
        )
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(f"unknown keys {unknown} in the request body; it takes "
                           f"{sorted(allowed)}.")  # fmt: skip
    if sum(key in body for key in one_of) != 1:
        needed = f"exactly one of {list(one_of)}" if len(one_of) > 1 else repr(one_of[0])
        raise RequestError(f"the request body must have {needed}.")
    signature = body.get("signature_name", SIGNATURE)
    if signature not in (SIGNATURE, ""):
        raise RequestError(f"signature {str(signature)[:80]!r} not found; this model has "
                           f"{SIGNATURE!r}.")  # fmt: skip


def _from_rows(
    servable: Servable, instances: Any, where: str, limits: Limits, named: bool = False
) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise RequestError(f"'{where}' must be a list of rows, received {_kind(instances)}.")
    limits.check_rows(len(instances), f"'{where}'")
    names = list(servable.inputs)
    if len(names) == 1 and not named and not isinstance(instances[0], dict):
        (name,) = names
        return {name: to_array(servable, name, instances, lambda i: f"{where}[{i}]")}
    columns: dict[str, list] = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"{where}[{index}] must be an object with the inputs {names}, "
                               f"received {_kind(instance)}.")  # fmt: skip
        _check_names(servable, instance, f"{where}[{index}]")
        for name in names:
            columns[name].append(instance[name])
    return {
        name: to_array(servable, name, values, lambda i, n=name: f"{where}[{i}].{n}")
        for name, values in columns.items()
    }


def _from_columns(servable: Servable, inputs: Any, limits: Limits) -> dict[str, np.ndarray]:
    names = list(servable.inputs)
    if len(names) == 1 and not (isinstance(inputs, dict) and names[0] in inputs):
        inputs = {names[0]: inputs}
        path = "inputs[{}]".format
    else:
        path = None
    if not isinstance(inputs, dict):
        raise RequestError(f"'inputs' must be an object with the inputs {names}, received "
                           f"{_kind(inputs)}.")  # fmt: skip
    _check_names(servable, inputs, "'inputs'")
    arrays = {}
    for name, values in inputs.items():
        if not isinstance(values, list):
            raise RequestError(f"inputs.{name} must be a list of rows, received {_kind(values)}.")
        limits.check_rows(len(values), f"inputs.{name}")
        where = path or (lambda i, n=name: f"inputs.{n}[{i}]")
        arrays[name] = to_array(servable, name, values, where)
    sizes = {len(array) for array in arrays.values()}
    if len(sizes) != 1:
        raise RequestError(f"inputs have different numbers of rows: {sorted(sizes)}.")
    return arrays


def _check_names(servable: Servable, given: dict, where: str) -> None:
    expected = set(servable.inputs)
    missing, unknown = sorted(expected - set(given)), sorted(set(given) - expected)
    if missing or unknown:
        raise RequestError(
            f"{where}: missing inputs {missing}, unknown inputs {[u[:40] for u in unknown][:8]}; "
            f"this model takes {sorted(expected)}."
        )


def to_array(
    servable: Servable, name: str, values: list, where: Callable[[int], str]
) -> np.ndarray:
    """One input's rows as an array of its signature's dtype and shape; ``where(i)`` names
    row ``i`` in errors. A fast vectorised check runs first; only a request it refuses is
    walked value by value, to say where the bad value is."""
    spec = servable.inputs[name]
    dims = [None if d is None else int(d) for d in spec.shape.as_list()[1:]]
    if spec.dtype.name == "string":
        return _texts(name, values, dims, where)
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    nulls = not dims and servable.imputes(name) is not False
    array = _numbers_fast(values, dims, dtype, nulls)
    if array is None:
        _locate_bad_number(servable, name, values, dims, dtype, where)
        raise RequestError(f"input {name!r} could not be read as {dtype.name} rows of shape "
                           f"{dims}.")  # fmt: skip
    return array


def _numbers_fast(values: list, dims: list, dtype: np.dtype, nulls: bool) -> np.ndarray | None:
    try:
        objects = np.array(values, dtype=object)
    except ValueError:  # ragged
        return None
    if objects.ndim != len(dims) + 1 or any(
        want is not None and want != got for want, got in zip(dims, objects.shape[1:], strict=True)
    ):
        return None
    kinds = set(map(type, objects.ravel().tolist()))
    allowed = {int, float} if dtype.kind == "f" else {bool} if dtype.kind == "b" else {int}
    if nulls:
        allowed = allowed | {type(None)}
    if not kinds <= allowed:
        return None
    try:
        if type(None) in kinds:
            objects = np.where(objects == None, np.nan, objects)  # noqa: E711
        with np.errstate(over="raise", invalid="raise"):
            wide = objects.astype(np.float64 if dtype.kind == "f" else dtype)
            if dtype.kind == "f":
                finite = wide[~np.isnan(wide)] if nulls else wide
                if not np.isfinite(finite).all() or (np.abs(finite) > np.finfo(dtype).max).any():
                    return None
                return wide.astype(dtype)
    except (OverflowError, FloatingPointError, ValueError, TypeError):
        return None
    return wide


def _locate_bad_number(
    servable: Servable, name: str, values: list, dims: list, dtype: np.dtype, where: Callable
) -> None:
    """Raise a RequestError naming the first value that cannot be in this input."""
    shape = ["rows", *["any" if d is None else d for d in dims]]
    seen_shapes: dict[int, int] = {}

    def walk(value: Any, rest: list, path: str, depth: int) -> None:
        if rest:
            if not isinstance(value, list):
                raise RequestError(f"{path} is {_kind(value)}; input {name!r} takes rows of "
                                   f"shape {shape}, so it must be a list.")  # fmt: skip
            want = rest[0] if rest[0] is not None else seen_shapes.setdefault(depth, len(value))
            if len(value) != want:
                raise RequestError(f"{path} has {len(value)} items where {want} are expected "
                                   f"(input {name!r} takes rows of shape {shape}).")  # fmt: skip
            for index, item in enumerate(value):
                walk(item, rest[1:], f"{path}[{index}]", depth + 1)
            return
        _check_number(servable, name, value, path, dtype, not dims)

    for index, row in enumerate(values):
        walk(row, dims, where(index), 1)


def _check_number(
    servable: Servable, name: str, value: Any, path: str, dtype: np.dtype, scalar_rows: bool
) -> None:
    if value is None:
        if not scalar_rows:
            raise RequestError(f"{path} is null; input {name!r} takes numbers.")
        raise RequestError(
            f"{path} is null (a missing number), and this model does not impute missing "
            f"values in {name!r} (it was trained with data.missing: error); send a number."
        )
    if isinstance(value, list):
        raise RequestError(f"{path} is a list where a number is expected (input {name!r} is "
                           f"ragged or has too many dimensions).")  # fmt: skip
    if dtype.kind == "b":
        if not isinstance(value, bool):
            raise RequestError(f"{path} is {_kind(value)}; input {name!r} takes true or false.")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{path} is {_kind(value)}; input {name!r} takes numbers.")
    if dtype.kind in "iu" and not isinstance(value, int):
        raise RequestError(f"{path} is {value!r}; input {name!r} takes whole numbers.")
    if isinstance(value, float) and not np.isfinite(value):
        raise RequestError(
            f"{path} is a non-finite number ({value}); send finite numbers"
            + (", or null for a missing value." if scalar_rows else ".")
        )
    # Python compares an int of any size with a float exactly (NumPy's scalars overflow).
    limit = float(np.finfo(dtype).max) if dtype.kind == "f" else int(np.iinfo(dtype).max)
    low = -limit if dtype.kind == "f" else int(np.iinfo(dtype).min)
    if not low <= value <= limit:
        raise RequestError(
            f"{path} is {str(value)[:24]}{'...' if len(str(value)) > 24 else ''}, out of "
            f"{dtype.name}'s range (input {name!r})."
        )


def _texts(name: str, values: list, dims: list, where: Callable[[int], str]) -> np.ndarray:
    if dims:  # text models take one string per row here
        raise RequestError(f"input {name!r} takes text of shape {['rows', *dims]}, which this "
                           f"server does not read.")  # fmt: skip
    encoded = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise RequestError(f"{where(index)} is {_kind(value)}; input {name!r} takes text.")
        try:
            encoded.append(value.encode("utf-8"))
        except UnicodeEncodeError as error:
            raise RequestError(
                f"{where(index)} holds an unpaired surrogate "
                f"({value[error.start]!r} at character {error.start}), which is not Unicode "
                "text; send the text as UTF-8."
            ) from None
    array = np.empty(len(encoded), dtype=object)
    array[:] = encoded
    return array


def _kind(value: Any) -> str:
    """A short description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = str(value)
        return f"the number {text[:24]}{'...' if len(text) > 24 else ''}"
    if isinstance(value, str):
        return f"the text {value[:24]!r}{'...' if len(value) > 24 else ''}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "an object"


# === Arrays to answers ===


def check_finite(outputs: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> None:
    """Refuse outputs that are not finite (JSON has no NaN), saying why if inputs had
    missing numbers the model did not fill."""
    if all(a.dtype.kind != "f" or np.isfinite(a).all() for a in outputs.values()):
        return
    missing = sorted(
        name for name, a in inputs.items() if a.dtype.kind == "f" and np.isnan(a).any()
    )
    if missing:
        raise RequestError(
            f"the model's output is not finite: inputs {missing} hold missing numbers (null) "
            "and this model does not impute them (it was trained with data.missing: error); "
            "send numbers."
        )
    raise RequestError(
        "the model's output is not finite for these inputs (far outside the range it was "
        "trained on?)."
    )


def plain(array: np.ndarray) -> Any:
    """An output array as JSON values (bytes as text)."""
    if array.dtype.kind in ("S", "O"):
        return [plain(item) for item in array] if array.ndim > 1 else [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()
        ]  # fmt: skip
    return array.tolist()


def predict_answer(outputs: dict[str, np.ndarray], rows: bool) -> dict[str, Any]:
    """TF Serving's :predict answer: ``predictions`` (row format) or ``outputs``."""
    values = {name: plain(array) for name, array in outputs.items()}
    if rows:
        if len(values) == 1:
            return {"predictions": next(iter(values.values()))}
        count = len(next(iter(values.values())))
        return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(count)]}
    if len(values) == 1:
        return {"outputs": next(iter(values.values()))}
    return {"outputs": values}


def verbs(servable: Servable) -> list[str]:
    """The REST verbs this model answers: :predict always; :classify where it outputs
    class probabilities, :regress where it outputs one number per row."""
    answered = ["predict"]
    outputs = servable.outputs
    probabilities = outputs.get("probabilities")
    if (probabilities is not None and probabilities.shape.rank == 2) or (
        "probability" in outputs and outputs["probability"].shape.rank == 1
    ):
        answered.append("classify")
    prediction = outputs.get("prediction")
    if prediction is not None and prediction.shape.rank == 1 and prediction.dtype.is_floating:
        answered.append("regress")
    return answered


def classify_answer(servable: Servable, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """TF Serving's :classify answer: per example, ``[label, score]`` for every class."""
    if "probabilities" in outputs:
        scores = outputs["probabilities"]
    else:
        positive = outputs["probability"].astype(np.float64)
        scores = np.stack([1 - positive, positive], axis=1)
    names = servable.facts.get("class_names") or [str(i) for i in range(scores.shape[1])]
    return {"result": [[[str(n), float(s)] for n, s in zip(names, row, strict=False)]
                       for row in scores]}  # fmt: skip


def regress_answer(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """TF Serving's :regress answer: one number per example."""
    return {"result": outputs["prediction"].astype(np.float64).tolist()}


# === Tensors (gRPC) ===


def check_shape(servable: Servable, name: str, shape: list[int], limits: Limits) -> None:
    """Refuse a tensor of the wrong shape for this input before its values are read."""
    spec = servable.inputs[name]
    dims = spec.shape.as_list()
    expected = ["rows", *["any" if d is None else d for d in dims[1:]]]
    if len(shape) != len(dims) or any(
        want is not None and want != got for want, got in zip(dims[1:], shape[1:], strict=True)
    ):
        raise RequestError(f"input {name!r} has shape {shape}; the model expects {expected}.")
    limits.check_rows(shape[0], f"input {name!r}")
    if any(size < 0 for size in shape) or int(np.prod(shape, dtype=np.float64)) * 4 > (
        limits.max_body_bytes
    ):
        raise limits.body_too_large()


def from_tensor(servable: Servable, name: str, array: np.ndarray) -> np.ndarray:
    """A received tensor as this input's array (after :func:`check_shape`): text stays
    bytes; numbers are checked as JSON numbers are (finite, in range, NaN only where the
    model imputes a missing number)."""
    spec = servable.inputs[name]
    if spec.dtype.name == "string":
        if array.dtype.kind not in ("O", "S"):
            raise RequestError(f"input {name!r} takes DT_STRING, received {array.dtype.name}.")
        return array.astype(object)
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    if array.dtype.kind not in "fiu" or (dtype.kind != "f" and array.dtype.kind == "f"):
        raise RequestError(f"input {name!r} takes {dtype.name} values, received "
                           f"{array.dtype.name}.")  # fmt: skip
    if dtype.kind != "f":
        if array.size and (array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
            raise RequestError(f"input {name!r} has a value out of {dtype.name}'s range.")
        return array.astype(dtype)
    wide = array.astype(np.float64)
    missing = np.isnan(wide)
    if missing.any() and (array.ndim > 1 or servable.imputes(name) is False):
        raise RequestError(f"input {name!r} holds NaN, and this model does not impute missing "
                           f"values there; send numbers.")  # fmt: skip
    present = wide[~missing]
    if not np.isfinite(present).all():
        raise RequestError(f"input {name!r} has a non-finite number; send finite numbers.")
    if (np.abs(present) > np.finfo(dtype).max).any():
        raise RequestError(f"input {name!r} has a number out of {dtype.name}'s range.")
    return wide.astype(dtype)
