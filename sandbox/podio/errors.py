"""Podio's error body (reference podio-api.md §2.1) and the exception the handlers raise."""

from __future__ import annotations

import json
from typing import Any

# Machine codes per status. 403/404/409/410/420 follow the official clients' mapping
# (§2.2); "invalid_value" for rejected field values is our best knowledge of Podio's code
# [unverified in the reference], "unavailable" for 5xx likewise.
ERROR_CODES = {
    400: "invalid_value",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    420: "rate_limit",
    429: "rate_limit",
    500: "server_error",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}
NO_OPERATION = "No matching operation could be found. Check the method and the path."


class PodioError(Exception):
    """An API error: becomes the §2.1 body with ``status``."""

    def __init__(self, status: int, description: str, *, error: str | None = None,
                 detail: str | None = None, parameters: dict[str, Any] | None = None,
                 propagate: bool = True, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error or ERROR_CODES.get(status, "error")
        self.description = description
        self.detail = detail
        self.parameters = parameters or {}
        self.propagate = propagate
        self.headers = headers or {}

    def body(self, url: str, query_string: str, method: str | None) -> dict[str, Any]:
        """The JSON body Podio answers with."""
        return error_payload(self.error, self.description, url, query_string, method,
                             detail=self.detail, parameters=self.parameters,
                             propagate=self.propagate)


def error_payload(error: str, description: str, url: str, query_string: str,
                  method: str | None, *, detail: str | None = None,
                  parameters: dict[str, Any] | None = None,
                  propagate: bool = False) -> dict[str, Any]:
    """§2.1 body; ``request.url`` uses http:// like the real service (reference §2.1)."""
    if url.startswith("https://"):
        url = "http://" + url[len("https://"):]
    return {
        "error": error,
        "error_description": description,
        "error_detail": detail,
        "error_parameters": parameters or {},
        "error_propagate": propagate,
        "request": {"url": url, "query_string": query_string, "method": method},
    }


def fault_body(status: int, url: str, retry_after: float | None
               ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Body and headers for a status injected by the sandbox's fault middleware."""
    error = ERROR_CODES.get(status, "error")
    headers: list[tuple[bytes, bytes]] = []
    if status in (420, 429):
        wait = int(retry_after) if retry_after is not None else 3600
        description = f"You have hit the rate limit. Please wait {wait} seconds before trying again"
        headers.append((b"x-rate-limit-remaining", b"0"))
    elif status >= 500:
        description = "The service is temporarily unavailable; retry with backoff."
    else:
        description = f"Injected error {status}."
    if retry_after is not None:
        # Podio documents no Retry-After; it is sent only when the fault asks for one.
        headers.append((b"retry-after", str(int(retry_after)).encode()))
    body = error_payload(error, description, url, "", None)
    return json.dumps(body).encode(), headers
