"""``dltk serve``: TensorFlow Serving's REST and gRPC APIs over a model repository
(``ROOT/NAME/VERSION/`` SavedModels, as ``dltk export`` writes them).

- ``repository``: the versions on disk and loaded; ``decoding``: bodies and tensors to
  checked input arrays, outputs to answers; ``batching``: concurrent requests gathered
  into one model call; ``core``: what both front ends share;
- ``rest``: the REST API (an ASGI app on uvicorn; ``connections`` adds read timeouts);
  ``grpc_api``: the gRPC API; ``metadata``: model metadata and the OpenAPI description;
  ``metrics``: Prometheus metrics.

SavedModels are TensorFlow's format, so serving runs on TensorFlow whatever backend
trained the model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from dltoolkit.errors import DltkError
from dltoolkit.serve.core import Batching, ServingCore
from dltoolkit.serve.decoding import Limits

LOG = logging.getLogger("dltoolkit.serve")


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Seconds a client has to send its request's headers and body, and an idle
    keep-alive connection stays open."""

    header_s: float = 10.0
    body_s: float = 30.0
    keep_alive_s: float = 5.0


def create_app(core: ServingCore):
    """The REST API's ASGI app over ``core``."""
    from dltoolkit.serve.rest import RestApp

    return RestApp(core)


def serve(
    repository: str | Path,
    host: str = "127.0.0.1",
    port: int = 8501,
    grpc_port: int | None = 8500,
    limits: Limits | None = None,
    batching: Batching | None = None,
    timeouts: Timeouts | None = None,
    access_log: str | None = "-",
) -> None:
    """Serve ``repository`` with REST on ``port`` and gRPC on ``grpc_port`` (None or 0:
    REST only) until interrupted.

    Args:
        repository: the model repository's root folder.
        host: the address both APIs bind (127.0.0.1: this machine only).
        port: the REST port (TF Serving's default 8501).
        grpc_port: the gRPC port (TF Serving's default 8500); None or 0 turns it off.
        limits: body size, rows per request and JSON limits.
        batching: how concurrent requests are gathered into one model call.
        timeouts: read and keep-alive timeouts for REST clients.
        access_log: ``-`` for standard error, a file path, or None for no access log.
    """
    import uvicorn

    from dltoolkit.serve.connections import timed_protocol

    if not Path(repository).is_dir():
        raise DltkError(
            f"model repository {str(repository)!r} is not a folder; export a model first "
            "(dltk recipe ... writes saved_models/) or pass the right path."
        )
    timeouts = timeouts or Timeouts()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    _access_log(access_log)
    core = ServingCore(repository, limits, batching)
    grpc_server = _start_grpc(core, host, grpc_port) if grpc_port else None
    core.repository.load_all()
    names = core.repository.names()
    LOG.info("serving %s from %s: REST on http://%s:%d%s; %s", ", ".join(names) or "no models yet",
             repository, host, port, f", gRPC on {host}:{grpc_port}" if grpc_server else "",
             ", ".join(f"{k}={v:g}" for k, v in core.describe().items()))  # fmt: skip
    protocol = timed_protocol(timeouts.header_s, timeouts.body_s, core.metrics.timeouts.inc)
    config = uvicorn.Config(
        create_app(core), host=host, port=port, http=protocol, lifespan="off",
        timeout_keep_alive=max(1, round(timeouts.keep_alive_s)), log_level="warning",
        access_log=False, proxy_headers=False,
    )  # fmt: skip
    try:
        uvicorn.Server(config).run()
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=2)


def _start_grpc(core: ServingCore, host: str, port: int):
    try:
        from dltoolkit.serve import grpc_api
    except ImportError as error:
        raise DltkError(
            f"TF Serving's gRPC API needs grpcio and tensorflow-serving-api ({error}): "
            "pip install 'dltoolkit[grpc]', or pass --grpc-port 0 to serve REST only."
        ) from None
    return grpc_api.start(core, host, port)


def _access_log(destination: str | None) -> None:
    access = logging.getLogger("dltoolkit.serve.access")
    access.propagate = False
    if destination is None:
        access.disabled = True
        return
    handler = logging.StreamHandler() if destination == "-" else logging.FileHandler(destination)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)


__all__ = ["Batching", "Limits", "ServingCore", "Timeouts", "create_app", "serve"]
