"""``dltk launch``: a multi_worker cluster of local processes, for trying one out.

Each worker is ``python -m dltoolkit COMMAND ... --strategy multi_worker`` with its own
TF_CONFIG on 127.0.0.1. Their output is shown line by line, prefixed with the worker. If a
worker dies, the others cannot go on (every step is a collective over all of them), so
the launcher stops them and starts the whole cluster again, up to ``max_restarts`` times;
the workers resume from the chief's last end-of-epoch backup.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from dltoolkit.errors import DltkError


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports on 127.0.0.1 that are free now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_configs(ports: Sequence[int]) -> list[str]:
    """TF_CONFIG for each of the local workers listening on ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(len(ports))
    ]


def launch(
    command: Sequence[str],
    workers: int,
    max_restarts: int = 2,
    echo: Callable[[str], None] = print,
) -> int:
    """Run dltk ``command`` on ``workers`` local workers; return the exit status (0 when
    every worker finished)."""
    if not command or command[0] not in ("recipe", "train"):
        raise DltkError(
            f"dltk launch runs `recipe NAME ...` or `train CONFIG ...`, received "
            f"{' '.join(command) or 'nothing'!r}; e.g. dltk launch --workers 2 recipe "
            "mlp-regression."
        )
    if "--strategy" in command or any(a.startswith("--strategy=") for a in command):
        raise DltkError("dltk launch sets --strategy multi_worker itself; drop --strategy.")
    for attempt in range(max_restarts + 1):
        status = _run_once(command, workers, echo)
        if status == 0:
            return 0
        if attempt < max_restarts:
            echo(
                f"launch: a worker failed (exit {status}); restarting all {workers} workers "
                f"({attempt + 1}/{max_restarts}), they resume from the last backup"
            )
    echo(f"launch: gave up after {max_restarts} restarts")
    return status


def _run_once(command: Sequence[str], workers: int, echo: Callable[[str], None]) -> int:
    processes = []
    pumps = []
    for index, tf_config in enumerate(cluster_configs(free_ports(workers))):
        environment = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "dltoolkit", *command, "--strategy", "multi_worker"],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        echo(f"launch: worker {index} pid {process.pid}")
        pump = threading.Thread(target=_pump, args=(process, f"[worker {index}] ", echo))
        pump.start()
        processes.append(process)
        pumps.append(pump)
    status = 0
    try:
        while True:
            codes = [process.poll() for process in processes]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                status = failed[0]
                break
            if all(code == 0 for code in codes):
                break
            time.sleep(0.2)
    finally:
        _stop(processes)
        for pump in pumps:
            pump.join()
    return status


def _pump(process: subprocess.Popen, prefix: str, echo: Callable[[str], None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        echo(prefix + line.rstrip("\n"))


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
