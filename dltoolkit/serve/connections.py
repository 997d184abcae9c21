"""HTTP connections with read timeouts: uvicorn's httptools protocol, plus a deadline for
a request's headers and one for its body, so a client that sends half a request cannot
hold a connection (uvicorn itself only times out idle keep-alive connections).

- headers: from the connection's start, or the end of the previous answer, the client has
  ``header_timeout_s`` to finish its request line and headers;
- body: from the end of the headers, ``body_timeout_s`` to finish the body.

A request that runs out of time is answered 408 and its connection closed; time the
server spends answering is never counted against the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LOG = logging.getLogger("dltoolkit.serve")


def timed_protocol(
    header_timeout_s: float, body_timeout_s: float, on_timeout: Callable[[], None]
) -> type:
    """An uvicorn HTTP protocol class with these read timeouts."""

    class TimedProtocol(HttpToolsProtocol):
        _read_timer: Any = None
        _got_data = False

        def data_received(self, data: bytes) -> None:
            self._got_data = True
            super().data_received(data)

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout_s, "headers")

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if self.cycle is not None and self.cycle.more_body:
                self._arm(body_timeout_s, "body")
            else:
                self._disarm()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm(header_timeout_s, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self, seconds: float, part: str) -> None:
            self._disarm()
            self._got_data = part == "body"
            self._read_timer = self.loop.call_later(seconds, self._timed_out, seconds, part)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _timed_out(self, seconds: float, part: str) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and cycle.response_started and not cycle.response_complete:
                return  # an answer is on its way; uvicorn closes the connection after it
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            if not self._got_data:  # idle, not slow: close quietly
                self.transport.close()
                return
            option = "header" if part == "headers" else "body"
            LOG.warning("%s sent no complete request %s within %g s; connection closed "
                        "(dltk serve --%s-timeout)", client, part, seconds, option)  # fmt: skip
            on_timeout()
            error = json.dumps({
                "error": f"request {part} not received within {seconds:g} s; connection closed."
            }).encode()  # fmt: skip
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(error), error)
            )
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.close()

    return TimedProtocol
