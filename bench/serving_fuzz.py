"""Benchmark: a fuzz run of `dltk serve`: N generated requests, REST and gRPC, against a
classification model (cnn-image) and a raw-feature table model (credit-risk).

Requests come from hypothesis strategies (any JSON body, raw bytes, deep nesting, huge
numbers, any text, odd paths and methods for REST; tensors of any dtype and shape, wrong
names and versions for gRPC), sent by 4 concurrent clients. Every 20th request is a valid
one whose answer must be a 200 (the server keeps answering). Counted: answers by class,
5xx, connections that hung (no answer within 30 s), valid requests not answered 200.

    python bench/serving_fuzz.py [--requests 10000] [--runs FOLDER_WITH_saved_models]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from results import machine, markdown_table, write_section
from serving_load import sample_rows, train

SECTION = "Serving fuzz run (dltk serve, REST and gRPC)"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.integers(min_value=10**30, max_value=10**500),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(
        st.text(max_size=10), children, max_size=6),
    max_leaves=60,
)  # fmt: skip
names = st.sampled_from(["duration.in.month", "purpose", "age.in.years", "image", "x", "é"])
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"instances": json_values}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"inputs": json_values}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(names, json_values,
                                                                 max_size=8), max_size=4)})
    .map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"examples": st.lists(st.dictionaries(names, json_values,
                                                                max_size=8), max_size=4)})
    .map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=400),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth),
    st.integers(1, 6000).map(lambda n: b'{"instances": [' + b"9" * n + b"]}"),
)  # fmt: skip
segment = st.text(max_size=12).map(lambda t: urllib.parse.quote(t, safe="", errors="replace"))
models = st.sampled_from(["cnn-image", "credit-risk", "nope"]) | segment
paths = st.one_of(
    st.builds(lambda m, v: f"/v1/models/{m}{v}", models,
              st.sampled_from([":predict", ":classify", ":regress", "/metadata", "", ":x"])),
    st.builds(lambda m, n, v: f"/v1/models/{m}/versions/{n}{v}", models,
              segment | st.sampled_from(["1", "2", "%C2%B2", "%D9%A1", "99999999999999999999"]),
              st.sampled_from([":predict", "/metadata", ""])),
    segment.map(lambda t: "/" + t),
    st.just("/monitoring/prometheus/metrics"), st.just("/v1/openapi.json"),
)  # fmt: skip
methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"])
dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.bytes_])


def rest_case(draw: st.DrawFn) -> tuple:
    return draw(methods), draw(paths), draw(bodies)


def grpc_case(draw: st.DrawFn) -> tuple:
    shape = draw(st.lists(st.integers(0, 9), min_size=0, max_size=5))
    model = draw(st.sampled_from(["cnn-image", "credit-risk", "nope", ""]))
    name = draw(st.sampled_from(["image", "purpose", "duration_in_month", "x"]))
    version = draw(st.none() | st.integers(-5, 5))
    return model, name, draw(dtypes), shape, version, draw(st.integers(0, 2**31))


def rest_answer(port: int, method: str, path: str, body: bytes | None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status < 500 and path != "/monitoring/prometheus/metrics":
            json.loads(payload)  # every answer is JSON
        return response.status
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=Path, help="a folder with saved_models/ already trained")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    folder = args.runs or Path(tempfile.mkdtemp())
    if args.runs is None:
        train(folder, "cnn-image")
        train(folder, "credit-risk", "--set=data.folds=null")
    from dltoolkit.launch import free_ports

    port, grpc_port = free_ports(2)
    server = subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", "serve", str(folder / "saved_models"), "--port",
         str(port), "--grpc-port", str(grpc_port), "--access-log", "off"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.DEVNULL,
        stderr=open(folder / "fuzz-server.log", "w"),  # noqa: SIM115
    )  # fmt: skip
    for _ in range(240):
        try:
            if rest_answer(port, "GET", "/v1/models/credit-risk", None) == 200:
                break
        except OSError:
            time.sleep(0.5)
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    valid_image = json.dumps({"instances": sample_rows("cnn-image", 1)}).encode()
    valid_table = json.dumps({"instances": sample_rows("credit-risk", 1)}).encode()
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    lock = threading.Lock()
    cases = st.one_of(st.composite(rest_case)().map(lambda c: ("rest", c)),
                      st.composite(grpc_case)().map(lambda c: ("grpc", c)))  # fmt: skip

    def grpc_answer(case: tuple) -> str:
        model, name, dtype, shape, version, seed = case
        rng = np.random.default_rng(seed)
        values = rng.normal(0, 10.0 ** rng.integers(0, 40), size=shape)
        values[rng.random(size=shape) < 0.05] = np.nan
        array = values.astype(str).astype(np.bytes_) if dtype is np.bytes_ else (
            np.nan_to_num(values).astype(dtype) if dtype not in (np.float32, np.float64)
            else values.astype(dtype))  # fmt: skip
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        try:
            stub.Predict(request, timeout=30)
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    def client(index: int) -> None:
        for number in range(index, args.requests, args.clients):
            if number % 20 == 0:  # a valid request: must be answered 200
                body = valid_image if number % 40 == 0 else valid_table
                model = "cnn-image" if number % 40 == 0 else "credit-risk"
                status = rest_answer(port, "POST", f"/v1/models/{model}:predict", body)
                with lock:
                    counts["valid 200" if status == 200 else "valid not 200"] += 1
                continue
            protocol, case = cases.example()
            try:
                if protocol == "rest":
                    method, path, body = case
                    status = rest_answer(port, method, path, body if method != "GET" else None)
                    kind = f"REST {status // 100}xx"
                    bad = status >= 500
                else:
                    code = grpc_answer(case)
                    kind = f"gRPC {code}"
                    bad = code in ("INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED")
            except TimeoutError:
                kind, bad = "hung (no answer in 30 s)", True
            except (OSError, http.client.HTTPException) as error:
                kind, bad = f"connection error {type(error).__name__}", True
            with lock:
                counts[kind] += 1
                if bad and len(failures) < 20:
                    failures.append(f"{protocol} {str(case)[:300]}")

    start = time.monotonic()
    import warnings

    warnings.filterwarnings("ignore")  # hypothesis' .example() outside a test
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    server.terminate()
    server.wait()
    rows = [[kind, f"{count:,}"] for kind, count in sorted(counts.items())]
    table = markdown_table(["answer", "requests"], rows)
    print(table)
    for failure in failures:
        print("FAILED:", failure)
    failed_kinds = ("gRPC INTERNAL", "gRPC UNKNOWN", "gRPC UNAVAILABLE", "valid not 200")
    five = sum(
        count for kind, count in counts.items()
        if "5xx" in kind or "hung" in kind or "connection" in kind or kind in failed_kinds
    )  # fmt: skip
    summary = (f"{machine()}; {args.requests:,} requests in {seconds:.0f} s from "
               f"{args.clients} concurrent clients, REST and gRPC, against cnn-image and "
               f"credit-risk; every 20th a valid request. 5xx, hung, dropped or failed valid "
               f"requests: {five}.")  # fmt: skip
    print(summary)
    if not args.no_write:
        write_section(SECTION, f"{summary}\n\n{table}")
    sys.exit(1 if five else 0)


if __name__ == "__main__":
    main()
