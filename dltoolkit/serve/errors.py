"""A client's bad request, answered with an HTTP status (REST) or the matching gRPC code."""

from __future__ import annotations

# HTTP status -> gRPC status code name (grpc.StatusCode's members).
GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
}


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status

    @property
    def grpc_code(self) -> str:
        """The gRPC status code name for this error."""
        return GRPC_CODES.get(self.status, "INVALID_ARGUMENT")
