"""TF Serving's REST API as an ASGI app (served by uvicorn).

- ``GET  /v1/models/NAME[/versions/N]``            version status
- ``GET  /v1/models/NAME[/versions/N]/metadata``   the ``serving_default`` signature
- ``POST /v1/models/NAME[/versions/N]:predict``    ``{"instances": [...]}`` (rows) or
  ``{"inputs": ...}`` (columns) -> ``{"predictions": ...}`` / ``{"outputs": ...}``
- ``POST ...:classify`` / ``...:regress``           ``{"examples": [...]}`` -> ``{"result": ...}``
- ``GET  /monitoring/prometheus/metrics``          Prometheus metrics
- ``GET  /v1/openapi.json``                        the OpenAPI description of the above

The app is a plain ASGI callable rather than a framework's: it has five routes, and it
reads each body itself, so the size limit, the JSON limits and a client leaving mid-body
are handled before anything else sees the request. Every answer is JSON; every bad
request gets a 4xx with ``{"error": "..."}``; an access log line per request in the
Common Log Format goes to the ``dltoolkit.serve.access`` logger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from dltoolkit.serve import decoding
from dltoolkit.serve.core import ServingCore
from dltoolkit.serve.errors import RequestError
from dltoolkit.serve.metadata import METRICS_PATH, OPENAPI_PATH, metadata, openapi
from dltoolkit.serve.metrics import CONTENT_TYPE
from dltoolkit.serve.repository import NAME, Servable, is_version

LOG = logging.getLogger("dltoolkit.serve")
ACCESS = logging.getLogger("dltoolkit.serve.access")
INLINE_BYTES = 256 * 1024  # bodies up to this size are parsed on the event loop
JSON_TYPE = b"application/json"


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class RestApp:
    """The ASGI app of one server."""

    def __init__(self, core: ServingCore):
        self.core = core
        self.limits = core.limits
        self.models = core.repository
        self._openapi = json.dumps(openapi()).encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        verb = "other"
        try:
            verb, status, body, kind = await self._route(scope, receive)
        except RequestError as error:
            status, body, kind = error.status, _json({"error": str(error)}), JSON_TYPE
        except ClientGone:
            self.core.metrics.disconnects.inc()
            LOG.info("%s left before sending its whole request (%s %s)",
                     _client(scope), scope["method"], scope["path"][:200])  # fmt: skip
            return
        except Exception as error:  # a defect: say so, log it whole, answer 500
            LOG.exception("internal error on %s %s", scope["method"], scope["path"][:200])
            status = 500
            body = _json({"error": f"internal error: {type(error).__name__}"})
            kind = JSON_TYPE
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.core.metrics.answered("rest", verb, status, time.perf_counter() - start)
        if ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info('%s - - [%s] "%s %s HTTP/%s" %d %d', _client(scope),
                        time.strftime("%d/%b/%Y:%H:%M:%S %z"), scope["method"],
                        scope["path"][:2000], scope.get("http_version", "1.1"), status,
                        len(body))  # fmt: skip

    async def _route(self, scope: dict, receive: Any) -> tuple[str, int, bytes, bytes]:
        method, path = scope["method"], scope["path"]
        if path in (METRICS_PATH, OPENAPI_PATH):
            if method != "GET":
                raise RequestError(f"{method} {path}: use GET.", 405)
            if path == OPENAPI_PATH:
                return "openapi", 200, self._openapi, JSON_TYPE
            self.core.metrics.loaded(self.models.loaded())
            return "metrics", 200, self.core.metrics.text(), CONTENT_TYPE.encode()
        if not path.startswith("/v1/models/"):
            raise RequestError(f"no such endpoint: {method} {path[:200]}; see {OPENAPI_PATH}.",
                               404)  # fmt: skip
        name, version, verb = _target(path)
        if method == "GET":
            if verb not in (None, "metadata"):
                raise RequestError(f"GET does not take :{verb}; POST :predict.", 405)
            if verb == "metadata":
                servable = await self._servable(name, version)
                return "metadata", 200, _json(metadata(servable)), JSON_TYPE
            status = await asyncio.get_running_loop().run_in_executor(
                None, self.models.status, name, version
            )
            return "status", 200, _json({"model_version_status": status}), JSON_TYPE
        if method != "POST":
            raise RequestError(f"{method} {path[:200]}: use GET, or POST :predict.", 405)
        if verb is None or verb == "metadata":
            raise RequestError(f"POST {path[:200]}: POST to :predict, :classify or :regress.",
                               405)  # fmt: skip
        raw = await self._body(scope, receive)
        servable = await self._servable(name, version)
        served = decoding.verbs(servable)
        if verb not in served:
            raise RequestError(
                f"unsupported verb {verb[:40]!r}; model {name!r} answers "
                f"{', '.join(':' + v for v in served)}.",
                404,
            )
        if len(raw) > INLINE_BYTES:
            loop = asyncio.get_running_loop()
            inputs, rows = await loop.run_in_executor(None, self._decode, servable, verb, raw)
        else:
            inputs, rows = self._decode(servable, verb, raw)
        outputs = await asyncio.wrap_future(self.core.run(servable, inputs))
        decoding.check_finite(outputs, inputs)
        if verb == "predict":
            answer = decoding.predict_answer(outputs, rows)
        elif verb == "classify":
            answer = decoding.classify_answer(servable, outputs)
        else:
            answer = decoding.regress_answer(outputs)
        return verb, 200, _json(answer), JSON_TYPE

    def _decode(self, servable: Servable, verb: str, raw: bytes) -> tuple[dict, bool]:
        body = decoding.parse_json(raw, self.limits)
        if verb == "predict":
            return decoding.predict_inputs(servable, body, self.limits)
        return decoding.example_inputs(servable, body, self.limits), True

    async def _servable(self, name: str, version: int | None) -> Servable:
        servable = self.models.get(name, version, wait=False)
        if servable is None:  # the first request for it: load it off the event loop
            loop = asyncio.get_running_loop()
            servable = await loop.run_in_executor(None, self.models.servable, name, version)
        return servable

    async def _body(self, scope: dict, receive: Any) -> bytes:
        limit = self.limits.max_body_bytes
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                raise self.limits.body_too_large()
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self.limits.body_too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _target(path: str) -> tuple[str, int | None, str | None]:
    """(name, version, verb) from /v1/models/NAME[/versions/N][:verb|/metadata]."""
    rest = path[len("/v1/models/") :]
    verb = None
    if ":" in rest:
        rest, verb = rest.rsplit(":", 1)
    parts = rest.split("/")
    if parts[-1] == "metadata" and verb is None and len(parts) in (2, 4):
        verb, parts = "metadata", parts[:-1]
    version = None
    if len(parts) == 3 and parts[1] == "versions":
        if not is_version(parts[2]):
            raise RequestError(
                f"version {parts[2][:40]!r} is not a number (ASCII digits 0-9).", 400
            )
        version = int(parts[2])
    elif len(parts) != 1:
        raise RequestError(f"no such endpoint: {path[:200]}; see {OPENAPI_PATH}.", 404)
    if not NAME.fullmatch(parts[0]):
        request = f"Specific({parts[0][:80]}, {version})" if version else f"Latest({parts[0][:80]})"
        raise RequestError(f"Servable not found for request: {request}", 404)
    return parts[0], version, verb


def _json(payload: Any) -> bytes:
    # An unpaired surrogate a client sent (quoted in an error) is written as its JSON escape.
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode(
        "utf-8", "backslashreplace"
    )


def _client(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
