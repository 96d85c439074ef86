"""A thin Podio API client on httpx: OAuth2 tokens, error mapping, retries, rate limiting.

Behaviour follows the official Ruby/PHP clients (see docs/podio.md): ``Authorization:
OAuth2 <token>``; a 401 ``expired_token``/``invalid_token`` refreshes once and replays once;
420 (Podio's rate limit) and 429 back off; 5xx and dropped connections retry only for
requests that are safe to repeat. Every call is counted and throttled client-side so the
documented hourly quota is never exceeded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from connectors.reach import unreachable
from core.errors import AuthError, RemoteDataError, TransientError, UnreachableError
from core.settings import Settings

log = structlog.get_logger(__name__)

# Statuses Podio answers when the caller should slow down: 420 is Podio's own rate-limit
# status (reference §3); 429 is treated alike in case a proxy answers it.
RATE_LIMIT_STATUSES = {420, 429}
RETRYABLE_STATUSES = {500, 502, 503, 504}
MAX_ATTEMPTS = 6
# Podio's hourly window; the limit itself is a setting (documented 1,000 calls/hour).
QUOTA_WINDOW_SECONDS = 3600.0
# Keep a reserve below the quota for interactive users of the same key (reference §3 tip).
QUOTA_SAFETY_RATIO = 0.9
# Podio's documented "Rate limited" class: 250 calls/hour against the general 1,000 (§3).
STRICT_SHARE_PER_1000 = 250


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    expires_at: float
    ref: dict[str, Any] = field(default_factory=dict)


@dataclass
class RetryPolicy:
    """Backoff settings: exponential with jitter, bounded in total time."""

    base_seconds: float = 1.0
    rate_limit_seconds: float = 60.0  # reference §3: back off from ~60 s on 420
    max_seconds: float = 900.0  # reference §3: cap ~15 min
    max_total_seconds: float = 900.0

    def delay(self, attempt: int, rate_limited: bool, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_seconds)
        base = self.rate_limit_seconds if rate_limited else self.base_seconds
        return min(self.max_seconds, base * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


class QuotaExhausted(TransientError):
    """The client's own hourly budget is used up: not retried within the call (the next
    slot is far), the caller tries again later."""


class QuotaGuard:
    """Client-side limiter: at most ``limit`` calls in any rolling hour."""

    def __init__(self, limit: int, max_wait_seconds: float) -> None:
        self.limit = max(1, int(limit * QUOTA_SAFETY_RATIO))
        self.max_wait_seconds = max_wait_seconds
        self.learned = False
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def learn(self, limit: int) -> None:
        """Podio's own ceiling for these calls (X-Rate-Limit-Limit), once known."""
        with self._lock:
            self.limit = max(1, int(limit * QUOTA_SAFETY_RATIO))
            self.learned = True

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            while self._calls and now - self._calls[0] > QUOTA_WINDOW_SECONDS:
                self._calls.popleft()
            if len(self._calls) >= self.limit:
                wait = QUOTA_WINDOW_SECONDS - (now - self._calls[0])
                if wait > self.max_wait_seconds:
                    raise QuotaExhausted(
                        f"Podio: cuota por hora agotada ({self.limit} llamadas); la próxima "
                        f"en {wait:.0f} s", retry_after=wait)
                time.sleep(wait)
            self._calls.append(time.monotonic())

    @property
    def used_last_hour(self) -> int:
        now = time.monotonic()
        return sum(1 for t in self._calls if now - t <= QUOTA_WINDOW_SECONDS)


class PodioClient:
    """Podio over HTTP. One instance per process; thread-safe for token handling."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        username: str = "",
        password: str = "",
        app_tokens: dict[int, str] | None = None,
        rate_limit_per_hour: int = 1000,
        filter_rate_limit_per_hour: int | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._app_tokens = app_tokens or {}
        self.retry = retry or RetryPolicy()
        self.rate_limit_per_hour = rate_limit_per_hour
        self.quota = QuotaGuard(rate_limit_per_hour, self.retry.max_total_seconds)
        # The filter operation's own budget: whether Podio counts it in the stricter
        # "Rate limited" class (250 of the general 1,000) is undocumented
        # (docs/fidelidad.md). Unless set, it starts at that class's share and is then
        # taken from Podio's answer: X-Rate-Limit-Limit is "the ceiling for that call"
        # (developers.podio.com/index/limits, reference §3).
        self._filter_auto = filter_rate_limit_per_hour is None
        self.filter_quota = QuotaGuard(
            filter_rate_limit_per_hour if filter_rate_limit_per_hour is not None
            else max(1, rate_limit_per_hour * STRICT_SHARE_PER_1000 // 1000),
            self.retry.max_total_seconds)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"User-Agent": "saeko-sync"})
        # Whether the host has ever answered this client: until it has, a connection that
        # cannot be opened is a wrong PODIO_API_URL, not retried (connectors/reach.py).
        self._answered = False
        self._tokens: dict[str, Token] = {}
        self._token_lock = threading.Lock()
        self.calls = 0
        self.last_rate_limit: dict[str, int] = {}
        # What Podio said on its latest response, per credential and ceiling (a filter may
        # answer with the stricter class's): (subject, limit) -> {limit, remaining, at}.
        self.rate_reports: dict[tuple[str, int], dict[str, Any]] = {}
        self._app_fields: dict[int, dict[str, dict[str, Any]]] = {}
        # App-token mode: which app an item or a hook belongs to (an app token reaches only
        # its own app, reference §1.3, so every call must carry the right app's token).
        self._item_apps: dict[int, int] = {}
        # The zone Podio reads created_on/last_edit_on filter bounds in, once found out
        # (connectors/podio/filter_zone.py); None until then.
        self.filter_frame: str | None = None
        self._hook_apps: dict[int, int] = {}
        self._listed_hook_apps: set[int] = set()  # apps whose hook list was read

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> PodioClient:
        app_tokens = {app_id: token for app_id, token in settings.podio_apps.values()
                      if app_id and token}
        return cls(
            settings.podio_api_url, settings.podio_client_id,
            settings.podio_client_secret.get_secret_value(),
            username=settings.podio_username,
            password=settings.podio_password.get_secret_value(),
            app_tokens=app_tokens,
            rate_limit_per_hour=settings.podio_rate_limit_per_hour,
            filter_rate_limit_per_hour=settings.podio_filter_rate_limit_per_hour,
            timeout=settings.podio_timeout_seconds,
            retry=RetryPolicy(base_seconds=settings.podio_retry_base_seconds,
                              rate_limit_seconds=settings.podio_rate_limit_backoff_seconds,
                              max_total_seconds=settings.podio_max_retry_seconds),
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    # --- authentication -------------------------------------------------------------

    def _subject(self, app_id: int | None) -> str:
        if self._username and self._password:
            return "user"
        if app_id is not None and app_id in self._app_tokens:
            return f"app:{app_id}"
        if self._app_tokens and app_id is None:
            return f"app:{next(iter(self._app_tokens))}"
        if app_id is not None:
            raise AuthError(f"no hay credenciales para la app de Podio {app_id}: define "
                            "PODIO_USERNAME y PODIO_PASSWORD, o el PODIO_APP_<NOMBRE>_TOKEN de "
                            "esa app en .env")
        raise AuthError("no hay credenciales de Podio: define PODIO_USERNAME/PODIO_PASSWORD "
                        "o los pares PODIO_APP_<NOMBRE>_ID/_TOKEN en .env")

    def _grant(self, subject: str, refresh: Token | None = None) -> Token:
        form: dict[str, str] = {"client_id": self.client_id, "client_secret": self._client_secret}
        if refresh is not None and refresh.refresh_token:
            form |= {"grant_type": "refresh_token", "refresh_token": refresh.refresh_token}
        elif subject == "user":
            form |= {"grant_type": "password", "username": self._username,
                     "password": self._password}
        else:
            app_id = int(subject.split(":")[1])
            form |= {"grant_type": "app", "app_id": str(app_id),
                     "app_token": self._app_tokens[app_id]}
        self.quota.acquire()
        self.calls += 1
        try:
            response = self._http.post("/oauth/token", data=form)
        except httpx.TransportError as exc:
            self._raise_if_unreachable(exc)
            raise TransientError(f"Podio: falló la conexión al pedir el token "
                                 f"({exc.__class__.__name__}: {exc})") from exc
        self._answered = True
        if response.status_code == 200:
            body = response.json()
            return Token(body["access_token"], body.get("refresh_token"),
                         time.time() + float(body.get("expires_in", 28800)), body.get("ref", {}))
        error = _error_of(response)
        if refresh is not None and error.get("error") == "invalid_grant":
            return self._grant(subject)  # refresh token dead: log in again
        if response.status_code in RATE_LIMIT_STATUSES | RETRYABLE_STATUSES:
            raise TransientError(f"Podio respondió {response.status_code} al pedir el token",
                                 status=response.status_code, body=error)
        if error.get("error") == "invalid_client" or response.status_code == 401:
            raise AuthError("Podio rechazó la clave de API (invalid_client): revisa "
                            "PODIO_CLIENT_ID y PODIO_CLIENT_SECRET en .env",
                            status=response.status_code, body=error)
        which = ("PODIO_USERNAME/PODIO_PASSWORD" if subject == "user"
                 else f"el token de la app {subject.split(':')[1]} (PODIO_APP_<NOMBRE>_TOKEN)")
        raise AuthError(f"Podio rechazó las credenciales ({error.get('error', 'error')}): "
                        f"revisa {which} en .env", status=response.status_code, body=error)

    def _token(self, subject: str, *, force_refresh: bool = False) -> Token:
        with self._token_lock:
            token = self._tokens.get(subject)
            if token is None:
                token = self._grant(subject)
            elif force_refresh or token.expires_at - time.time() < 60:
                token = self._grant(subject, refresh=token)
            self._tokens[subject] = token
            return token

    @property
    def app_token_mode(self) -> bool:
        """True when only app tokens authenticate (no integration user): each call must
        then use the token of the app its object belongs to."""
        return not (self._username and self._password) and bool(self._app_tokens)

    def note_items(self, app_id: int, items: Any) -> None:
        """Remember the app of items read from it (saves a probe on a later webhook)."""
        if self.app_token_mode:
            for item in items or []:
                if isinstance(item, dict) and item.get("item_id") is not None:
                    self._item_apps[int(item["item_id"])] = app_id

    def for_item(self, item_id: int, call: Any, *, app_id: int | None = None,
                 hint: int | None = None) -> Any:
        """``call(app_id)`` with the token of the item's app.

        With an integration user any token reaches every app, so ``call(app_id)`` runs once.
        With app tokens only, the item's app is the one given, the one remembered, or found
        by trying each app's token in turn (``hint`` first): another app's token answers
        403 (reference §1.3); the app that answers is remembered. A 404/410 is the item's
        own answer and ends the search.
        """
        if app_id is not None or not self.app_token_mode:
            return call(app_id)
        known = self._item_apps.get(item_id)
        order = [a for a in (known, hint) if a is not None and a in self._app_tokens]
        order += [a for a in self._app_tokens if a not in order]
        for candidate in order:
            try:
                result = call(candidate)
            except AuthError as exc:
                if exc.status == 403:
                    continue
                raise
            self._item_apps[item_id] = candidate
            return result
        raise AuthError(f"ningún token de app de Podio configurado llega al item {item_id}: "
                        "define el PODIO_APP_<NOMBRE>_TOKEN de la app a la que pertenece",
                        status=403)

    def app_of_item(self, item_id: int, hint: int | None = None) -> int | None:
        """The app of an item in app-token mode (None with an integration user)."""
        if not self.app_token_mode:
            return None
        if item_id not in self._item_apps:
            self.for_item(item_id, lambda a: self.request(
                "GET", f"/item/{item_id}/basic", app_id=a), hint=hint)
        return self._item_apps[item_id]

    def app_of_hook(self, hook_id: int, app_ids: list[int]) -> int | None:
        """The app a hook is on (None with an integration user): remembered from
        registration, else found in each app's hook list (one GET per app, once)."""
        if not self.app_token_mode:
            return None
        if hook_id not in self._hook_apps:
            for app_id in app_ids:
                for hook in self.request("GET", f"/hook/app/{app_id}/", app_id=app_id) or []:
                    self._hook_apps[int(hook["hook_id"])] = app_id
                if hook_id in self._hook_apps:
                    break
        return self._hook_apps.get(hook_id)

    def hook_app(self, hook_id: int, app_ids: list[int]) -> int | None:
        """The app a hook is on, in either auth mode: remembered from registration, else
        found in each app's hook list (one GET per app, once per process)."""
        if hook_id not in self._hook_apps:
            for app_id in app_ids:
                if app_id in self._listed_hook_apps:
                    continue
                self._listed_hook_apps.add(app_id)
                for hook in self.request("GET", f"/hook/app/{app_id}/", app_id=app_id) or []:
                    self._hook_apps[int(hook["hook_id"])] = app_id
                if hook_id in self._hook_apps:
                    break
        return self._hook_apps.get(hook_id)

    def note_hook(self, hook_id: int, app_id: int) -> None:
        self._hook_apps[int(hook_id)] = app_id

    def own_refs(self) -> list[dict[str, Any]]:
        """The identities (``ref`` of our tokens) our writes are attributed to."""
        return [t.ref for t in self._tokens.values() if t.ref]

    # --- requests -------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, app_id: int | None = None, idempotent: bool | None = None
                ) -> Any:
        """Call Podio and return the decoded body (None when empty).

        ``idempotent`` (default: every method but POST) says whether a 5xx or a dropped
        connection may be retried; a rate-limit answer is always retried (nothing was done).
        Retries use tenacity: exponential backoff with jitter, Retry-After honoured, bounded
        by MAX_ATTEMPTS and ``retry.max_total_seconds``.
        """
        safe = method != "POST" if idempotent is None else idempotent
        subject = self._subject(app_id)

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, TransientError) \
                and not isinstance(exc, QuotaExhausted | UnreachableError) \
                and (safe or exc.status in RATE_LIMIT_STATUSES)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            rate_limited = isinstance(exc, TransientError) and exc.status in RATE_LIMIT_STATUSES
            retry_after = exc.retry_after if isinstance(exc, TransientError) else None
            return self.retry.delay(state.attempt_number, rate_limited, retry_after)

        retrying = Retrying(
            stop=stop_after_attempt(MAX_ATTEMPTS) | stop_after_delay(self.retry.max_total_seconds),
            wait=wait, retry=retry_if_exception(retryable), reraise=True,
            before_sleep=lambda st: log.warning(
                "podio.retry", method=method, path=path, attempt=st.attempt_number,
                error=str(st.outcome.exception() if st.outcome else "")))
        return retrying(self._send, method, path, params, json, subject)

    def _send(self, method: str, path: str, params: dict[str, Any] | None, json: Any,
              subject: str) -> Any:
        """One call (plus one replay after refreshing an expired token)."""
        for refreshed in (False, True):
            token = self._token(subject, force_refresh=refreshed)
            is_filter = method == "POST" and path.rstrip("/").endswith("/filter")
            if is_filter:
                self.filter_quota.acquire()
            self.quota.acquire()
            self.calls += 1
            try:
                response = self._http.request(
                    method, path, params=params, json=json,
                    headers={"Authorization": f"OAuth2 {token.access_token}"})
            except httpx.TransportError as exc:
                self._raise_if_unreachable(exc)
                raise TransientError(f"Podio: falló la conexión en {method} {path} "
                                     f"({exc.__class__.__name__})") from exc
            self._answered = True
            self._note_rate(response, subject)
            if is_filter:
                self._learn_filter_class(response)
            status = response.status_code
            if status < 300:
                return response.json() if response.content else None
            body = _error_of(response)
            if status == 401 and _is_expired(body) and not refreshed:
                continue
            if status in RATE_LIMIT_STATUSES | RETRYABLE_STATUSES:
                raise TransientError(f"Podio respondió {status} en {method} {path}",
                                     status=status, body=body, retry_after=_retry_after(response))
            raise _map_error(status, method, path, body)
        raise AuthError(f"Podio {method} {path}: rechazó el token otra vez tras renovarlo; "
                        "revisa las credenciales de Podio en .env")

    def _raise_if_unreachable(self, exc: httpx.TransportError) -> None:
        """A first connection that could not be opened: a wrong PODIO_API_URL, said at once."""
        if not self._answered:
            error = unreachable("Podio", self.base_url, "PODIO_API_URL", exc)
            if error is not None:
                raise error from exc

    def _learn_filter_class(self, response: httpx.Response) -> None:
        """Budget filter calls at the ceiling Podio states for them (unless set)."""
        limit = response.headers.get("X-Rate-Limit-Limit")
        if self._filter_auto and limit and limit.isdigit() and not self.filter_quota.learned:
            self.filter_quota.learn(min(int(limit), self.rate_limit_per_hour))
            log.info("podio.filter_rate_class", limit=int(limit))

    def _note_rate(self, response: httpx.Response, subject: str) -> None:
        """Podio's own count, from the headers of every response (reference §3): the
        ceiling for that call and what is left of it in the current hour."""
        limit = response.headers.get("X-Rate-Limit-Limit", "")
        remaining = response.headers.get("X-Rate-Limit-Remaining", "")
        if limit.isdigit() and remaining.isdigit():
            self.last_rate_limit = {"limit": int(limit), "remaining": int(remaining)}
            self.rate_reports[(subject, int(limit))] = {
                "credential": subject, "limit": int(limit), "remaining": int(remaining),
                "at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")}

    # --- typed helpers ----------------------------------------------------------------

    def get_app(self, app_id: int) -> dict[str, Any]:
        return self.request("GET", f"/app/{app_id}", app_id=app_id)  # type: ignore[no-any-return]

    def app_fields(self, app_id: int) -> dict[str, dict[str, Any]]:
        """external_id -> active field definition of an app (fetched once per client)."""
        if app_id not in self._app_fields:
            self._app_fields[app_id] = {
                f["external_id"]: f for f in self.get_app(app_id).get("fields", [])
                if f.get("status", "active") == "active"}
        return self._app_fields[app_id]

    def filter_items(self, app_id: int, body: dict[str, Any],
                     params: dict[str, Any] | None = None) -> dict[str, Any]:
        page: dict[str, Any] = self.request(
            "POST", f"/item/app/{app_id}/filter/", json=body, params=params, app_id=app_id,
            idempotent=True)
        self.note_items(app_id, (page or {}).get("items"))
        return page

    def get_item(self, item_id: int, app_id: int | None = None, *,
                 hint: int | None = None) -> dict[str, Any]:
        """GET one item with the token of its app (``for_item``)."""
        return self.for_item(item_id, lambda a: self.request(  # type: ignore[no-any-return]
            "GET", f"/item/{item_id}", params={"mark_as_viewed": "false"}, app_id=a),
            app_id=app_id, hint=hint)

    def update_item(self, item_id: int, fields: dict[str, Any], *, app_id: int | None = None,
                    hook: bool = False, silent: bool = False, revision: int | None = None
                    ) -> dict[str, Any] | None:
        body: dict[str, Any] = {"fields": fields}
        if revision is not None:
            body["revision"] = revision
        return self.request("PUT", f"/item/{item_id}", json=body, app_id=app_id,  # type: ignore[no-any-return]
                            params={"hook": _flag(hook), "silent": _flag(silent)})

    def create_item(self, app_id: int, fields: dict[str, Any], *, external_id: str | None = None,
                    hook: bool = False, silent: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"fields": fields}
        if external_id:
            body["external_id"] = external_id
        return self.request("POST", f"/item/app/{app_id}/", json=body, app_id=app_id,  # type: ignore[no-any-return]
                            params={"hook": _flag(hook), "silent": _flag(silent)})


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _error_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"error": "unreadable", "error_description": response.text[:300]}
    return body if isinstance(body, dict) else {"error": "unexpected", "body": body}


def _is_expired(body: dict[str, Any]) -> bool:
    return "expired_token" in str(body.get("error_description", "")) or body.get(
        "error") == "invalid_token"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _map_error(status: int, method: str, path: str, body: dict[str, Any]) -> Exception:
    detail = body.get("error_description") or body.get("error") or "sin detalle"
    where = f"Podio {method} {path}"
    if status == 401:
        return AuthError(f"{where}: no autorizado ({detail}); revisa las credenciales de "
                         "Podio en .env", status=status, body=body)
    if status == 403:
        return AuthError(f"{where}: prohibido ({detail}); el usuario de Podio o el token "
                         "de app no tiene acceso a esta app", status=status, body=body)
    if status in RETRYABLE_STATUSES:
        return TransientError(f"{where} respondió {status} ({detail})", status=status, body=body)
    return RemoteDataError(f"{where} respondió {status}: {detail}", status=status, body=body)
