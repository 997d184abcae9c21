"""What the REST and gRPC front ends share: the repository, the limits, the batching of
each loaded version and the metrics."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit.serve.batching import Batcher
from dltoolkit.serve.decoding import Limits
from dltoolkit.serve.metrics import Metrics
from dltoolkit.serve.repository import Repository, Servable

LOG = logging.getLogger("dltoolkit.serve")


@dataclasses.dataclass(frozen=True)
class Batching:
    """How concurrent requests to one version are gathered (see batching.py)."""

    timeout_ms: float = 0.0
    threads: int = 1


class ServingCore:
    """The models, their batchers, the limits and the metrics of one server."""

    def __init__(
        self,
        repository: str | Path,
        limits: Limits | None = None,
        batching: Batching | None = None,
        rescan_s: float = 1.0,
    ):
        self.limits = limits or Limits()
        self.batching = batching or Batching()
        self.metrics = Metrics()
        self.repository = Repository(repository, rescan_s, on_load=self._attach_batcher)

    def _attach_batcher(self, servable: Servable) -> None:
        servable.batcher = Batcher(
            servable.function,
            max_rows=self.limits.max_rows,
            timeout_s=self.batching.timeout_ms / 1000,
            threads=self.batching.threads,
            observe=self.metrics.batch_observer(servable.name),
            name=f"{servable.name}/{servable.version}",
        )
        self.metrics.loaded([*self.repository.loaded(), servable])

    def run(self, servable: Servable, inputs: dict[str, np.ndarray]) -> Future:
        """Queue one request's inputs for its model; the future gets its outputs."""
        return servable.batcher.submit(inputs)

    def describe(self) -> dict[str, Any]:
        """The settings a server logs when it starts."""
        return {
            "max_rows": self.limits.max_rows,
            "max_body_mb": self.limits.max_body_bytes / (1024 * 1024),
            "batch_timeout_ms": self.batching.timeout_ms,
            "batch_threads": self.batching.threads,
        }
