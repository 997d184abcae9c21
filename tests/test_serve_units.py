"""dltk serve's parts without a server: request batching, and the checks that turn JSON
into input arrays (every failure a RequestError naming where, never another exception)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dltoolkit.serve.batching import Batcher
from dltoolkit.serve.decoding import Limits, nesting_depth, parse_json, predict_inputs
from dltoolkit.serve.errors import RequestError
from dltoolkit.serve.repository import Servable, is_version

pytestmark = pytest.mark.backend_neutral


def table_servable(imputed: list[str] | None) -> Servable:
    import tensorflow as tf

    inputs = {
        "amount": tf.TensorSpec((None,), tf.float32),
        "city": tf.TensorSpec((None,), tf.string),
    }
    facts = {} if imputed is None else {"imputed_inputs": imputed}
    return Servable("m", 1, None, inputs, {}, facts)


def image_servable() -> Servable:
    import tensorflow as tf

    return Servable("m", 1, None, {"image": tf.TensorSpec((None, 2, 2), tf.float32)}, {})


class Recorder:
    """A model that doubles its input and records the rows of each call."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[int] = []
        self.gate = gate

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.gate is not None:
            self.gate.wait(10)
        if (x < 0).any():
            raise ValueError("negative input")
        self.calls.append(len(x))
        return {"y": x * 2}


def test_batcher_gathers_requests_and_gives_each_its_rows() -> None:
    model = Recorder()
    batcher = Batcher(model, max_rows=100, timeout_s=0.3)
    requests = [np.full((k, 3), float(k), np.float32) for k in (1, 2, 3, 4)]
    futures = [batcher.submit({"x": r}) for r in requests]
    for request, future in zip(requests, futures, strict=True):
        np.testing.assert_array_equal(future.result(10)["y"], request * 2)
    assert model.calls == [10]  # one call for all four


def test_batcher_keeps_the_row_limit_and_separates_shapes() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    batcher = Batcher(model, max_rows=5, timeout_s=0.2)
    first = batcher.submit({"x": np.ones((1, 3), np.float32)})  # held at the gate
    rest = [batcher.submit({"x": np.ones((2, 3), np.float32)}) for _ in range(3)]
    other = batcher.submit({"x": np.ones((1, 4), np.float32)})  # another inner shape
    gate.set()
    for future in [first, *rest, other]:
        future.result(10)
    assert sum(model.calls) == 8 and max(model.calls) <= 5 and len(model.calls) >= 3


def test_a_bad_request_does_not_fail_the_others_in_its_batch() -> None:
    model = Recorder()
    batcher = Batcher(model, max_rows=100, timeout_s=0.3)
    good = batcher.submit({"x": np.ones((2, 3), np.float32)})
    bad = batcher.submit({"x": -np.ones((1, 3), np.float32)})
    np.testing.assert_array_equal(good.result(10)["y"], np.full((2, 3), 2.0))
    with pytest.raises(RequestError, match="negative input"):
        bad.result(10)


@pytest.mark.parametrize(
    ("imputed", "outcome"),
    [(["amount"], "nan"), ([], "refused"), (None, "nan")],  # None: an older export
)
def test_null_numbers_follow_what_the_export_recorded(imputed, outcome) -> None:
    servable = table_servable(imputed)
    body = {"instances": [{"amount": 1.5, "city": "Zürich"}, {"amount": None, "city": "x"}]}
    if outcome == "refused":
        with pytest.raises(RequestError, match=r"instances\[1\].amount is null"):
            predict_inputs(servable, body, Limits())
        return
    arrays, rows = predict_inputs(servable, body, Limits())
    assert rows and np.isnan(arrays["amount"][1]) and arrays["amount"][0] == 1.5
    assert arrays["city"].tolist() == ["Zürich".encode(), b"x"]


def test_limits_on_depth_digits_and_rows() -> None:
    limits = Limits(max_rows=3, max_depth=5, max_digits=10)
    assert nesting_depth(b'{"a": "[[[[[[", "b": [[1]]}') == 3
    with pytest.raises(RequestError, match="nested 6 levels"):
        parse_json(b"[[[[[[1]]]]]]", limits)
    with pytest.raises(RequestError, match="11-digit integer"):
        parse_json(b"[12345678901]", limits)
    with pytest.raises(RequestError, match="at most 3") as error:
        predict_inputs(image_servable(), {"instances": [[[0, 0], [0, 0]]] * 4}, limits)
    assert error.value.status == 413
    assert is_version("12") and not is_version("")
    assert not is_version("²") and not is_version("\u0661")  # other scripts' digits


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    | st.integers(min_value=2**64, max_value=10**400),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["amount", "city", "image", "x"]), children, max_size=3),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(body=st.fixed_dictionaries({"instances": json_values}) | st.fixed_dictionaries(
    {"inputs": json_values}), which=st.sampled_from(["table", "image"]))  # fmt: skip
def test_any_json_is_an_array_or_a_request_error(body, which) -> None:
    servable = table_servable(["amount"]) if which == "table" else image_servable()
    raw = json.dumps(body).encode("utf-8", "surrogatepass")
    try:
        arrays, _ = predict_inputs(servable, parse_json(raw, Limits()), Limits())
    except RequestError as error:
        assert 400 <= error.status < 500 and str(error)
        return
    for name, array in arrays.items():
        spec = servable.inputs[name]
        assert array.ndim == spec.shape.rank
        if array.dtype.kind == "f":
            assert np.isfinite(array[~np.isnan(array)]).all()
