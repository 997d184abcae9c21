"""dltk serve through a real server on 127.0.0.1: TF Serving's endpoints, every bad-request
case as a 4xx with {"error": ...}, a new version picked up, a corrupt version skipped, and
random JSON bodies that never get a 500."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dltoolkit.launch import free_ports
from tests.conftest import BACKEND, run_recipe_in

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="serving loads SavedModels with TensorFlow; the training backend plays no part",
)


def call(url: str, body: bytes | str | None = None, method: str | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one request."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """A model repository with cnn-image (version 1), mlp-regression and a corrupt model,
    served by ``dltk serve`` in a subprocess; yields (base URL, repository)."""
    root = tmp_path_factory.mktemp("serve")
    repository = root / "repository"
    exported = json.loads((trained_run / "metrics.json").read_text())["export"]["path"]
    exported = trained_run.parents[2] / exported  # relative to the folder it ran in
    shutil.copytree(exported, repository / "cnn-image" / "1")
    table_run = run_recipe_in(
        root, "mlp-regression", "--set", "train.epochs=1", "--set", "train.verbose=0",
        "--set", f"export.directory={repository}",
    )  # fmt: skip
    assert (repository / "mlp-regression" / "1").is_dir(), table_run
    broken = repository / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    (port,) = free_ports(1)
    log = open(root / "server.log", "w")  # noqa: SIM115 (open while the server runs)
    process = subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", "serve", str(repository), "--port", str(port),
         "--max-batch", "64", "--max-body-mb", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if call(f"{base}/v1/models/cnn-image")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not start: " + (root / "server.log").read_text()[-3000:])
    yield base, repository, root / "server.log"
    process.terminate()
    process.wait(timeout=30)
    log.close()


def digits(count: int) -> list:
    from sklearn.datasets import load_digits

    return load_digits().images[:count, :, :, None].astype(float).tolist()


def test_status_and_metadata_answer_like_tf_serving(server) -> None:
    base, _, _ = server
    status, body = call(f"{base}/v1/models/cnn-image")
    assert status == 200
    assert body["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    status, body = call(f"{base}/v1/models/cnn-image/versions/1/metadata")
    assert status == 200 and body["model_spec"] == {
        "name": "cnn-image", "signature_name": "", "version": "1"
    }  # fmt: skip
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (image,) = signature["inputs"].values()
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert {"probabilities", "class_id", "class_name"} <= set(signature["outputs"])


def test_rows_and_columns_give_the_saved_models_answer(server) -> None:
    import tensorflow as tf

    base, repository, _ = server
    images = digits(3)
    status, rows = call(f"{base}/v1/models/cnn-image:predict", json.dumps({"instances": images}))
    assert status == 200 and len(rows["predictions"]) == 3
    status, columns = call(
        f"{base}/v1/models/cnn-image/versions/1:predict", json.dumps({"inputs": images})
    )
    assert status == 200
    loaded = tf.saved_model.load(str(repository / "cnn-image" / "1"))
    signature = loaded.signatures["serving_default"]
    (name,) = signature.structured_input_signature[1]
    expected = signature(**{name: tf.constant(images, tf.float32)})
    np.testing.assert_allclose(
        columns["outputs"]["probabilities"], expected["probabilities"].numpy(), atol=1e-6
    )
    assert [row["class_id"] for row in rows["predictions"]] == columns["outputs"]["class_id"]
    assert columns["outputs"]["class_name"][0] == str(columns["outputs"]["class_id"][0])


def test_a_table_model_takes_named_features_and_null_for_missing(server) -> None:
    base, _, _ = server
    _, body = call(f"{base}/v1/models/mlp-regression/metadata")
    inputs = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    row = dict.fromkeys(inputs, 0.01)
    status, answer = call(
        f"{base}/v1/models/mlp-regression:predict", json.dumps({"instances": [row, row]})
    )
    assert status == 200 and len(answer["predictions"]) == 2
    assert answer["predictions"][0] == pytest.approx(answer["predictions"][1])
    wrong = {**row, "bmii": 1.0}
    wrong.pop("bmi")
    status, answer = call(
        f"{base}/v1/models/mlp-regression:predict", json.dumps({"instances": [wrong]})
    )
    assert status == 400 and "missing inputs ['bmi'], unknown inputs ['bmii']" in answer["error"]
    status, answer = call(
        f"{base}/v1/models/mlp-regression:predict",
        json.dumps({"instances": [{**row, "bmi": "heavy"}]}),
    )
    assert status == 400 and "input 'bmi' takes numbers, received 'heavy'" in answer["error"]


@pytest.mark.parametrize(
    ("path", "body", "method", "status", "words"),
    [
        ("/v1/models/cnn-image:predict", "{not json", None, 400, "malformed JSON"),
        ("/v1/models/cnn-image:predict", '{"instances": [[1, 2]]}', None, 400, "shape"),
        ("/v1/models/cnn-image:predict", '{"instances": [NaN]}', None, 400, "non-finite"),
        ("/v1/models/cnn-image:predict", '{"instances": []}', None, 400, "non-empty"),
        ("/v1/models/cnn-image:predict", '{"rows": []}', None, 400, "exactly one of"),
        ("/v1/models/cnn-image:predict", '[1, 2]', None, 400, "JSON object"),
        ("/v1/models/cnn-image:predict", '{"instances": [["a"]]}', None, 400, "takes numbers"),
        ("/v1/models/nope:predict", '{"instances": [1]}', None, 404, "Latest(nope)"),
        ("/v1/models/cnn-image/versions/7:predict", '{"instances": [1]}', None, 404,
         "Specific(cnn-image, 7)"),
        ("/v1/models/cnn-image/versions/x", None, None, 400, "not a number"),
        ("/v1/models/cnn-image:classify", '{"instances": [1]}', None, 404, "unsupported verb"),
        ("/v1/models/cnn-image:predict", None, "GET", 405, "POST :predict"),
        ("/v2/anything", None, None, 404, "no such endpoint"),
        ("/v1/models/cnn-image", '{"instances": [1]}', "PUT", 405, "PUT"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_with_an_error(server, path, body, method, status, words) -> None:
    base, _, _ = server
    got, answer = call(base + path, body, method)
    assert got == status, answer
    assert words in answer["error"]


def test_limits_on_rows_and_body_size(server) -> None:
    base, _, _ = server
    status, answer = call(
        f"{base}/v1/models/cnn-image:predict", json.dumps({"instances": digits(65)})
    )
    assert status == 400 and "at most 64" in answer["error"]
    # A declared length over the limit is answered before the body is sent (a client
    # that keeps sending after the answer may see its connection closed).
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/v1/models/cnn-image:predict")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "over 1 MB" in answer["error"]


def test_a_corrupt_version_is_skipped_and_a_new_one_is_served(server) -> None:
    base, repository, log = server
    status, body = call(f"{base}/v1/models/broken")
    assert status == 200 and body["model_version_status"][0]["state"] == "END"
    assert body["model_version_status"][0]["status"]["error_message"]
    assert call(f"{base}/v1/models/broken:predict", '{"instances": [1]}')[0] == 404
    assert "model broken version 1" in log.read_text()
    # A new version appears the way dltk exports one: written aside, then renamed.
    staging = repository / "cnn-image" / ".export-test"
    shutil.copytree(repository / "cnn-image" / "1", staging)
    staging.rename(repository / "cnn-image" / "2")
    # Version 1 answers until version 2 has loaded in the background; then version 2 does.
    served = []
    deadline = time.monotonic() + 120
    while not served or served[-1] != "2":
        assert time.monotonic() < deadline, f"version 2 never served: {served[-5:]}"
        status, body = call(f"{base}/v1/models/cnn-image/metadata")
        assert status == 200, body
        served.append(body["model_spec"]["version"])
        time.sleep(0.05)
    assert set(served) <= {"1", "2"} and served == sorted(served)
    assert call(f"{base}/v1/models/cnn-image/versions/1/metadata")[0] == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": json_values}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(
        st.sampled_from(["age", "sex", "bmi", "bp", "s1", "x"]), json_values, max_size=6),
        max_size=3)}),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, model=st.sampled_from(["cnn-image", "mlp-regression"]))
def test_random_json_bodies_never_get_a_500(server, body, model) -> None:
    base, _, _ = server
    status, answer = call(f"{base}/v1/models/{model}:predict", json.dumps(body))
    assert status in (200, 400), (status, answer)
    assert ("error" in answer) == (status == 400)
