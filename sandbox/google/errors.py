"""Google-shaped error bodies (reference google-apis.md §7).

Sheets and Forms answer the "new" shape (``status`` plus optional ``details``); Gmail and
Calendar add the legacy ``errors[]`` list (``domain``/``reason``). Every body carries ``code``
and ``message``, which is all gspread's ``APIError`` and googleapiclient's ``HttpError`` need.
"""

from __future__ import annotations

import json
from typing import Any

# HTTP status -> canonical google.rpc status name.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ALREADY_EXISTS", 410: "ABORTED",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, "
         "login cookie or other valid authentication credential. See "
         "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    408: "Request timed out.",
    409: "Requested entity already exists",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    502: "Bad gateway.",
    503: "The service is currently unavailable.",
    504: "Deadline exceeded.",
}
LEGACY_REASONS = {
    400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound", 409: "duplicate",
    429: "rateLimitExceeded", 500: "backendError", 503: "backendError",
}
# APIs whose errors carry the legacy errors[] list; Calendar often omits ``status`` (§7).
LEGACY_APIS = {"gmail", "calendar"}
API_SERVICES = {"sheets": "sheets.googleapis.com", "forms": "forms.googleapis.com",
                "gmail": "gmail.googleapis.com", "calendar": "calendar-json.googleapis.com"}
# A fixed, invented project number for quota messages.
SANDBOX_PROJECT_NUMBER = "123456789012"


class GoogleApiError(Exception):
    """Raised by a handler; rendered as a Google error body with ``status``."""

    def __init__(self, code: int, message: str | None = None, *, reason: str | None = None,
                 domain: str = "global", status: str | None = None,
                 details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, location: str | None = None) -> None:
        super().__init__(message or DEFAULT_MESSAGES.get(code, "Error"))
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "Error")
        self.reason = reason
        self.domain = domain
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        self.headers = headers or {}
        self.location = location

    def body(self, api: str) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if api in LEGACY_APIS or self.reason:
            legacy: dict[str, Any] = {"message": self.message, "domain": self.domain,
                                      "reason": self.reason or LEGACY_REASONS.get(self.code,
                                                                                  "unknown")}
            if self.location:
                legacy["location"] = self.location
                legacy["locationType"] = "header" if self.location == "Authorization" \
                    else "parameter"
            error["errors"] = [legacy]
        if api != "calendar" or self.code in (401, 403, 429):
            error["status"] = self.status
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, **kwargs: Any) -> GoogleApiError:
    """400 INVALID_ARGUMENT with Google's wording."""
    return GoogleApiError(400, message, **kwargs)


def not_found(message: str = "Requested entity was not found.", **kwargs: Any) -> GoogleApiError:
    return GoogleApiError(404, message, reason="notFound", **kwargs)


def unauthenticated() -> GoogleApiError:
    """401: no or invalid bearer token (clients refresh and replay once or twice)."""
    return GoogleApiError(
        401, reason="authError", location="Authorization",
        headers={"www-authenticate": 'Bearer realm="https://accounts.google.com/"'})


def insufficient_scopes(api: str, method_id: str) -> GoogleApiError:
    """403 when the token lacks every scope the method accepts (discovery ``scopes``)."""
    return GoogleApiError(
        403, "Request had insufficient authentication scopes.",
        reason="insufficientPermissions", status="PERMISSION_DENIED",
        details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                  "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                  "metadata": {"service": API_SERVICES.get(api, api), "method": method_id}}])


def quota_exceeded(api: str, bucket: str, limit: int, retry_after: float | None) -> GoogleApiError:
    """429 RESOURCE_EXHAUSTED (Sheets/Forms/Gmail) or 403 usageLimits (Calendar), §3.9/§6.5."""
    headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after else {}
    if api == "calendar":
        return GoogleApiError(403, "Rate Limit Exceeded", reason="userRateLimitExceeded",
                              domain="usageLimits", headers=headers)
    metric = {"sheets_read": ("Read requests", "read_requests", "ReadRequestsPerMinutePerUser"),
              "sheets_write": ("Write requests", "write_requests",
                               "WriteRequestsPerMinutePerUser")}.get(
        bucket, (f"{bucket} requests", bucket, f"{bucket}PerMinutePerUser"))
    service = API_SERVICES.get(api, api)
    message = (f"Quota exceeded for quota metric '{metric[0]}' and limit '{metric[0]} per minute "
               f"per user' of service '{service}' for consumer "
               f"'project_number:{SANDBOX_PROJECT_NUMBER}'.")
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com",
                "metadata": {"service": service,
                             "consumer": f"projects/{SANDBOX_PROJECT_NUMBER}",
                             "quota_metric": f"{service}/{metric[1]}",
                             "quota_limit": metric[2], "quota_limit_value": str(limit)}}]
    reason = "rateLimitExceeded" if api in LEGACY_APIS else None
    return GoogleApiError(429, message, reason=reason, domain="usageLimits",
                          details=details, headers=headers)


def api_of_path(path: str) -> str:
    """Which API a path under /google belongs to (for error shapes)."""
    if path.startswith("/v4/spreadsheets"):
        return "sheets"
    if path.startswith("/v1/forms"):
        return "forms"
    if path.startswith("/gmail/"):
        return "gmail"
    if path.startswith("/calendar/"):
        return "calendar"
    if path.startswith("/token"):
        return "oauth"
    return "google"


def fault_body(status: int, path: str, retry_after: float | None
               ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body an injected fault answers with, in the shape of the API behind ``path``."""
    api = api_of_path(path)
    headers: list[tuple[bytes, bytes]] = []
    if retry_after is not None:
        headers.append((b"retry-after", str(max(0, round(retry_after))).encode()))
    if api == "oauth":
        # The token endpoint answers OAuth-style errors (RFC 6749 §5.2).
        error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
        return json.dumps({"error": error, "error_description": DEFAULT_MESSAGES.get(
            status, "error")}).encode(), headers
    if status == 429 and api == "calendar":
        exc = GoogleApiError(429, "Rate Limit Exceeded", reason="rateLimitExceeded",
                             domain="usageLimits")
    elif status == 429:
        exc = quota_exceeded(api, "sheets_read" if api == "sheets" else api, 60, None)
    else:
        exc = GoogleApiError(status)
    return json.dumps(exc.body(api)).encode(), headers
