"""``dltk launch``: a cluster of local processes, for trying multi_worker or
parameter_server training on one machine.

Each process is ``python -m dltoolkit COMMAND ... --strategy S`` with its own TF_CONFIG on
127.0.0.1: N workers (multi_worker), or a chief, N workers and K parameter servers
(parameter_server). Their output is shown line by line, prefixed with the task. If a
process dies, the launcher stops the others and starts the whole cluster again, up to
``max_restarts`` times; training resumes from the chief's last end-of-epoch backup. The
launch is done when every worker has finished (multi_worker) or the chief has
(parameter_server; workers and parameter servers serve until they are stopped).
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


def cluster_tasks(workers: int, parameter_servers: int = 0) -> list[tuple[str, int]]:
    """The tasks of a local cluster, the one that writes the run first."""
    if not parameter_servers:
        return [("worker", index) for index in range(workers)]
    return [
        ("chief", 0),
        *[("worker", index) for index in range(workers)],
        *[("ps", index) for index in range(parameter_servers)],
    ]


def cluster_configs(tasks: Sequence[tuple[str, int]], ports: Sequence[int]) -> list[str]:
    """TF_CONFIG for each task, the tasks listening on ``ports`` of 127.0.0.1."""
    cluster: dict[str, list[str]] = {}
    for (kind, _), port in zip(tasks, ports, strict=True):
        cluster.setdefault(kind, []).append(f"127.0.0.1:{port}")
    return [
        json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})
        for kind, index in tasks
    ]


def launch(
    command: Sequence[str],
    workers: int,
    max_restarts: int = 2,
    echo: Callable[[str], None] = print,
    parameter_servers: int = 0,
) -> int:
    """Run dltk ``command`` on ``workers`` local workers (and, with ``parameter_servers``,
    a chief and that many parameter servers); return the exit status (0: it finished)."""
    if not command or command[0] not in ("recipe", "train"):
        raise DltkError(
            f"dltk launch runs `recipe NAME ...` or `train CONFIG ...`, received "
            f"{' '.join(command) or 'nothing'!r}; e.g. dltk launch --workers 2 recipe "
            "mlp-regression."
        )
    if "--strategy" in command or any(a.startswith("--strategy=") for a in command):
        raise DltkError("dltk launch sets --strategy itself; drop --strategy.")
    tasks = cluster_tasks(workers, parameter_servers)
    for attempt in range(max_restarts + 1):
        status = _run_once(command, tasks, echo)
        if status == 0:
            return 0
        if attempt < max_restarts:
            echo(
                f"launch: a process failed (exit {status}); restarting all {len(tasks)} "
                f"processes ({attempt + 1}/{max_restarts}), they resume from the last backup"
            )
    echo(f"launch: gave up after {max_restarts} restarts")
    return status


def _run_once(
    command: Sequence[str], tasks: Sequence[tuple[str, int]], echo: Callable[[str], None]
) -> int:
    coordinated = tasks[0][0] == "chief"
    strategy = "parameter_server" if coordinated else "multi_worker"
    processes = []
    pumps = []
    for (kind, index), tf_config in zip(
        tasks, cluster_configs(tasks, free_ports(len(tasks))), strict=True
    ):
        environment = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "dltoolkit", *command, "--strategy", strategy],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        name = kind if kind == "chief" else f"{kind} {index}"
        echo(f"launch: {name} pid {process.pid}")
        pump = threading.Thread(target=_pump, args=(process, f"[{name}] ", echo))
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
            if codes[0] == 0 and (coordinated or all(code == 0 for code in codes)):
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
