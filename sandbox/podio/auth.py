"""OAuth2 of the Podio emulator (reference §1) and its hourly rate limits (§3)."""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Actor, ApiClient, PodioUser

DEMO_CLIENT_ID = "saeko-sync-demo"
DEMO_CLIENT_SECRET = "demo-secret"
DEMO_PASSWORD = "demo"
ACCESS_TOKEN_SECONDS = 28800  # expires_in documented and observed (§1.3)
REFRESH_TOKEN_LIFETIME = timedelta(days=28)  # documented refresh-token lifetime (§1.3)
FIRST_API_VIA_ID = 2001  # created_via ids of API keys; 1 is Podio's own UI
GENERAL_HOURLY_LIMIT = 1000  # documented general limit per user per API key (§3)
RATE_LIMITED_HOURLY_LIMIT = 250  # documented limit of operations marked "Rate limited" (§3)
RATE_WINDOW = timedelta(hours=1)
FILTER_OPERATIONS = frozenset({"POST /item/app/{app_id}/filter/"})
EXPIRED_WWW_AUTHENTICATE = 'Bearer realm="podio", error="expired_token"'  # §1.5


@dataclass(frozen=True)
class Principal:
    """The subject of a token: a user or an app, and the API key it came through."""

    kind: str  # "user" | "app"
    id: int
    client: ApiClient

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, self.id, self.client)

    @property
    def quota_key(self) -> tuple[str, int, str]:
        return (self.kind, self.id, self.client.client_id)


@dataclass
class _Token:
    principal: Principal
    expires_at: datetime


class OAuth:
    """Token endpoint logic and bearer-token checks, on the sandbox clock."""

    def __init__(self, users: Iterable[PodioUser], app_tokens: dict[int, str]) -> None:
        self.clients: dict[str, ApiClient] = {}
        self.passwords = {u.mail.lower(): (DEMO_PASSWORD, u) for u in users}
        self.app_tokens = app_tokens
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "saeko-sync")

    def add_client(self, client_id: str, secret: str, name: str | None = None) -> ApiClient:
        """Register an API key; each gets its own created_via id."""
        client = ApiClient(client_id, secret, FIRST_API_VIA_ID + len(self.clients),
                           name or client_id)
        self.clients[client_id] = client
        return client

    def grant(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        """POST /oauth/token[/v2]: a §1.3 success body, or PodioError 400/401."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise PodioError(400, "grant_type is required", error="invalid_request")
        client = self.clients.get(str(params.get("client_id") or ""))
        if client is None or not secrets.compare_digest(
                client.secret, str(params.get("client_secret") or "")):
            raise PodioError(401, "Invalid client_id or client_secret; check the API key",
                             error="invalid_client")
        if grant_type == "password":
            principal = self._password(params, client)
        elif grant_type == "app":
            principal = self._app(params, client)
        elif grant_type == "refresh_token":
            principal = self._use_refresh(params, client, now)
        elif grant_type == "authorization_code":
            raise PodioError(400, "The sandbox issues no authorization codes (no browser); "
                                  "use the password or app grant", error="invalid_grant")
        else:
            raise PodioError(400, f"Unsupported grant_type {grant_type!r}",
                             error="unsupported_grant_type")
        return self._issue(principal, now, params.get("refresh_token"))

    def _password(self, params: dict[str, Any], client: ApiClient) -> Principal:
        entry = self.passwords.get(str(params.get("username") or "").lower())
        if entry is None or entry[0] != params.get("password"):
            raise PodioError(400, "Invalid username or password", error="invalid_grant")
        return Principal("user", entry[1].user_id, client)

    def _app(self, params: dict[str, Any], client: ApiClient) -> Principal:
        try:
            app_id = int(params.get("app_id") or 0)
        except (TypeError, ValueError):
            app_id = 0
        token = self.app_tokens.get(app_id)
        if token is None or token != params.get("app_token"):
            raise PodioError(400, "Invalid app_id or app_token", error="invalid_grant")
        return Principal("app", app_id, client)

    def _use_refresh(self, params: dict[str, Any], client: ApiClient,
                     now: datetime) -> Principal:
        stored = self._refresh.get(str(params.get("refresh_token") or ""))
        if stored is None or stored.expires_at <= now or \
                stored.principal.client.client_id != client.client_id:
            raise PodioError(400, "Invalid or expired refresh_token; authenticate again",
                             error="invalid_grant")
        return stored.principal

    def _issue(self, principal: Principal, now: datetime, refresh: Any) -> dict[str, Any]:
        access = secrets.token_hex(16)
        self._access[access] = _Token(principal, now + timedelta(seconds=ACCESS_TOKEN_SECONDS))
        # A refresh returns the same refresh token and restarts its 28 days (§1.3, 2017 report).
        refresh_token = refresh if isinstance(refresh, str) and refresh in self._refresh \
            else secrets.token_hex(16)
        self._refresh[refresh_token] = _Token(principal, now + REFRESH_TOKEN_LIFETIME)
        scope = "global:all" if principal.kind == "user" else f"app:{principal.id}:all"
        return {"access_token": access, "token_type": "bearer",
                "expires_in": ACCESS_TOKEN_SECONDS, "refresh_token": refresh_token,
                "scope": scope, "ref": {"type": principal.kind, "id": principal.id}}

    def authenticate(self, header: str | None, query_token: str | None,
                     now: datetime) -> Principal:
        """The principal of a request, or PodioError 401 (§1.4, §1.5)."""
        token = query_token
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() not in ("oauth2", "bearer") or not value.strip():
                raise PodioError(401, "Malformed Authorization header; send "
                                      "'Authorization: OAuth2 <access_token>'",
                                 error="invalid_request")
            token = value.strip()
        if not token:
            raise PodioError(401, "No access token given; get one from POST /oauth/token and "
                                  "send 'Authorization: OAuth2 <access_token>'",
                             error="invalid_request")
        stored = self._access.get(token)
        if stored is None:
            raise PodioError(401, "invalid_token", error="invalid_token")
        if stored.expires_at <= now:
            raise PodioError(401, "expired_token", error="unauthorized",
                             headers={"WWW-Authenticate": EXPIRED_WWW_AUTHENTICATE})
        return stored.principal

    def expire_all(self, now: datetime) -> int:
        """Expire every access token (refresh tokens stay valid); returns how many."""
        for token in self._access.values():
            token.expires_at = min(token.expires_at, now - timedelta(seconds=1))
        return len(self._access)


class RateLimiter:
    """Calls per (subject, API key) in a rolling hour of the sandbox clock (§3).

    Operations in ``rate_limited_operations`` (route templates such as
    ``"POST /item/app/{app_id}/filter/"``) count against the stricter limit; which Podio
    operations are "Rate limited" is not in the reference, so the set is configuration and
    filter joins it only with ``filter_rate_limited`` (a third party claims it does).
    """

    def __init__(self, general: int = GENERAL_HOURLY_LIMIT,
                 rate_limited: int = RATE_LIMITED_HOURLY_LIMIT,
                 rate_limited_operations: Iterable[str] = (),
                 filter_rate_limited: bool = False) -> None:
        self.general = general
        self.rate_limited = rate_limited
        self.operations = set(rate_limited_operations)
        self.filter_rate_limited = filter_rate_limited
        self._windows: dict[tuple[Any, str], deque[datetime]] = {}

    def limited(self, operation: str) -> bool:
        return operation in self.operations or (
            self.filter_rate_limited and operation in FILTER_OPERATIONS)

    def charge(self, key: Any, operation: str, now: datetime) -> dict[str, str]:
        """Count one call; the rate headers, or PodioError 420 past the limit."""
        klass = "rate_limited" if self.limited(operation) else "general"
        limit = self.rate_limited if klass == "rate_limited" else self.general
        window = self._windows.setdefault((key, klass), deque())
        while window and window[0] <= now - RATE_WINDOW:
            window.popleft()
        if len(window) >= limit:
            wait = int((window[0] + RATE_WINDOW - now).total_seconds()) if window else 3600
            raise PodioError(
                420, f"You have hit the rate limit. Please wait {max(wait, 1)} seconds before "
                     "trying again", error="rate_limit",
                headers={"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": "0"})
        window.append(now)
        return {"X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Remaining": str(limit - len(window))}

    def reset(self) -> None:
        self._windows.clear()

    def usage(self, now: datetime) -> dict[str, Any]:
        out = []
        for (key, klass), window in self._windows.items():
            used = sum(1 for t in window if t > now - RATE_WINDOW)
            out.append({"subject": f"{key[0]}:{key[1]}", "client_id": key[2],
                        "class": klass, "used": used})
        return {"general": self.general, "rate_limited": self.rate_limited,
                "rate_limited_operations": sorted(self.operations),
                "filter_rate_limited": self.filter_rate_limited, "usage": out}
