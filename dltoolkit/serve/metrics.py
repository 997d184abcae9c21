"""The server's Prometheus metrics (prometheus_client), served at
``/monitoring/prometheus/metrics`` as TF Serving does.

- ``dltk_serve_requests_total{protocol, verb, code}``: requests answered, by HTTP status
  (REST) or gRPC code name;
- ``dltk_serve_request_latency_seconds{protocol, verb}``: time from a request's arrival
  to its answer;
- ``dltk_serve_batch_rows{model}``: rows per model call (how well batching gathers);
- ``dltk_serve_model_versions_loaded{model}``: versions loaded now;
- ``dltk_serve_disconnects_total`` and ``dltk_serve_timeouts_total``: clients that left
  mid-request, and connections closed for reading too slowly.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (re-exported)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """One server's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dltk_serve_requests", "Requests answered.", ["protocol", "verb", "code"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "dltk_serve_request_latency_seconds", "Time from a request's arrival to its answer.",
            ["protocol", "verb"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "dltk_serve_batch_rows", "Rows per model call.", ["model"], buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.versions = Gauge(
            "dltk_serve_model_versions_loaded", "Versions loaded now.", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.disconnects = Counter(
            "dltk_serve_disconnects", "Clients that left mid-request.", registry=self.registry
        )
        self.timeouts = Counter(
            "dltk_serve_timeouts", "Connections closed for reading too slowly.",
            registry=self.registry,
        )  # fmt: skip

    def answered(self, protocol: str, verb: str, code: Any, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(protocol, verb, str(code)).inc()
        self.latency.labels(protocol, verb).observe(seconds)

    def batch_observer(self, model: str) -> Any:
        """A function recording the rows of each call of ``model``."""
        histogram = self.batch_rows.labels(model)
        return histogram.observe

    def loaded(self, servables: list[Any]) -> None:
        """Set the loaded-versions gauge from the servables loaded now."""
        counts: dict[str, int] = {}
        for servable in servables:
            counts[servable.name] = counts.get(servable.name, 0) + 1
        for model, count in counts.items():
            self.versions.labels(model).set(count)

    def text(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
