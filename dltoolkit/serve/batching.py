"""Request batching, as TF Serving's batching does: requests to the same model version that
arrive together are gathered and run as one call of the model.

Each loaded version has a queue and ``threads`` worker threads. A worker takes the oldest
request, then gathers more for up to ``timeout_s`` (or until ``max_rows`` rows), runs them
as one call and hands each request exactly its own rows back. While a call runs, new
requests queue up, so under load batches form even with a timeout of 0; with one client a
timeout of 0 adds no latency. Requests whose inputs cannot be stacked together (different
inner shapes) are run apart; a batch the model refuses is retried request by request, so a
bad request never fails the others.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from dltoolkit.serve.errors import RequestError


@dataclasses.dataclass
class Pending:
    """One request waiting for the model: its input arrays, row count and answer."""

    inputs: dict[str, np.ndarray]
    rows: int
    future: Future

    def key(self) -> tuple:
        """Requests with the same key can be stacked into one call."""
        return tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(self.inputs.items()))


class Batcher:
    """Gathers requests for one model version and runs them in batches."""

    def __init__(
        self,
        function: Callable[..., dict[str, Any]],
        max_rows: int,
        timeout_s: float,
        threads: int = 1,
        observe: Callable[[int], None] | None = None,
        name: str = "model",
    ):
        self.function = function
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self.observe = observe  # called with the rows of every model call
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._carried: collections.deque[Pending] = collections.deque()
        self._carried_lock = threading.Lock()
        for index in range(threads):
            threading.Thread(target=self._work, name=f"batch {name} {index}", daemon=True).start()

    def submit(self, inputs: dict[str, np.ndarray]) -> Future:
        """Queue one request; its future gets ``{output name: array}`` with its own rows,
        or a RequestError."""
        rows = len(next(iter(inputs.values())))
        pending = Pending(inputs, rows, Future())
        self._queue.put(pending)
        return pending.future

    def _next(self, timeout: float | None) -> Pending | None:
        with self._carried_lock:
            if self._carried:
                return self._carried.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _work(self) -> None:
        while True:
            first = self._next(None if not self._carried else 0)
            if first is None:
                continue
            batch, rows, key = [first], first.rows, first.key()
            deadline = time.monotonic() + self.timeout_s
            while rows < self.max_rows:
                left = deadline - time.monotonic()
                item = self._next(max(left, 0.0))
                if item is None:
                    break
                if item.key() != key or rows + item.rows > self.max_rows:
                    with self._carried_lock:
                        self._carried.append(item)
                    break
                batch.append(item)
                rows += item.rows
            self._run(batch, rows)

    def _run(self, batch: list[Pending], rows: int) -> None:
        if len(batch) == 1:
            self._answer(batch[0], self._call(batch[0].inputs, batch[0].rows))
            return
        names = list(batch[0].inputs)
        stacked = {name: np.concatenate([p.inputs[name] for p in batch]) for name in names}
        outputs = self._call(stacked, rows)
        if isinstance(outputs, Exception) or any(len(a) != rows for a in outputs.values()):
            for pending in batch:  # one bad request must not fail the others
                self._answer(pending, self._call(pending.inputs, pending.rows))
            return
        start = 0
        for pending in batch:
            end = start + pending.rows
            self._answer(pending, {name: a[start:end] for name, a in outputs.items()})
            start = end

    def _call(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray] | Exception:
        try:
            result = self.function(**inputs)
            outputs = {name: np.asarray(value) for name, value in result.items()}
        except Exception as error:  # e.g. a value only the graph checks
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return RequestError(f"the model rejected the input: {message[:300]}")
        if self.observe is not None:
            self.observe(rows)
        return outputs

    @staticmethod
    def _answer(pending: Pending, outcome: dict[str, np.ndarray] | Exception) -> None:
        if isinstance(outcome, Exception):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
