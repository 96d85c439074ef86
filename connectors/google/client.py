"""The Google client: service-account credentials with the least scopes per API, the real
libraries (gspread for Sheets, google-api-python-client for Forms, Gmail and Calendar)
pointed at one API root, bounded retries and client-side quota limits.

Redirection hooks (docs/google.md), all supported extension points, no patching:
- google-api-python-client: ``client_options={"api_endpoint": ...}`` per service, built from
  the discovery documents shipped in the package (``static_discovery=True``, no network).
- gspread: the ``http_client`` parameter of ``gspread.Client`` with a subclass of
  ``gspread.http_client.HTTPClient`` (every Sheets call passes through its ``request``),
  which swaps the ``https://sheets.googleapis.com`` prefix gspread hard-codes for the root
  and adds our retries and limits.
- google-auth: the token endpoint comes from the key file's ``token_uri``; the regional
  access boundary lookup google-auth 2.62 makes after each refresh goes through the
  transport we hand it (``auth_request=`` of AuthorizedSession, ``http=`` of AuthorizedHttp),
  which sends it to the root too when one is set.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

import google.auth.exceptions
import google.auth.transport.requests
import google_auth_httplib2
import gspread
import httplib2
import requests
import structlog
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from gspread.http_client import HTTPClient

from connectors.google.errors import (
    LostResponse,
    from_refresh_error,
    from_response,
    parse_body,
)
from connectors.google.retry import MinuteLimiter, Retrier
from core.errors import ConfigError, ConnectorError, TransientError
from core.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

SCOPE = "https://www.googleapis.com/auth/"
# The least scopes each use needs (reference §2.4).
SCOPES: dict[str, tuple[str, ...]] = {
    "sheets_read": (SCOPE + "spreadsheets.readonly",),
    "sheets": (SCOPE + "spreadsheets",),
    "forms": (SCOPE + "forms.body.readonly", SCOPE + "forms.responses.readonly"),
    "gmail": (SCOPE + "gmail.send", SCOPE + "gmail.readonly"),  # readonly: find by marker
    "calendar": (SCOPE + "calendar.events",),
}
# Uses that act as GOOGLE_DELEGATED_USER (domain-wide delegation): a service account has no
# mailbox, and cannot invite attendees or create Meet links on its own (§2.3, §6.1).
DELEGATED = frozenset({"gmail", "calendar"})
DISCOVERY = {"forms": ("forms", "v1"), "gmail": ("gmail", "v1"),
             "calendar": ("calendar", "v3")}
# Hosts the libraries hard-code, redirected to GOOGLE_API_ROOT when it is set.
GOOGLE_HOSTS = ("https://sheets.googleapis.com", "https://www.googleapis.com",
                "https://iamcredentials.googleapis.com")
CONNECTION_ERRORS = (OSError, http.client.HTTPException, httplib2.HttpLib2Error,
                     requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError,
                     google.auth.exceptions.TransportError)


@dataclass(frozen=True)
class Endpoints:
    """Where each API lives: the real Google (root "") or one emulator root."""

    root: str

    def api_endpoint(self, api: str) -> str | None:
        if not self.root:
            return None
        base = self.root.rstrip("/")
        return f"{base}/calendar/v3/" if api == "calendar" else base

    def rewrite(self, url: str) -> str:
        if self.root:
            for host in GOOGLE_HOSTS:
                if url.startswith(host + "/"):
                    return self.root.rstrip("/") + url[len(host):]
        return url


class RoutedAuthRequest(google.auth.transport.requests.Request):
    """google-auth's requests transport, sending Google hosts to the configured root."""

    def __init__(self, endpoints: Endpoints, session: requests.Session) -> None:
        super().__init__(session)
        self.endpoints = endpoints

    def __call__(self, url: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        return super().__call__(self.endpoints.rewrite(url), method, *args, **kwargs)


class RoutedHttp(httplib2.Http):
    """httplib2 transport for googleapiclient that sends Google hosts to the root (only the
    credentials' own side requests reach it with a Google URL)."""

    def __init__(self, endpoints: Endpoints, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.endpoints = endpoints

    def request(self, uri: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().request(self.endpoints.rewrite(uri), *args, **kwargs)


class SheetsHTTPClient(HTTPClient):
    """gspread's HTTP client, bound to a GoogleClient: root, retries, limits, errors."""

    google: ClassVar[GoogleClient]
    scopes: ClassVar[tuple[str, ...]]

    def __init__(self, auth: Any, session: requests.Session | None = None) -> None:
        if session is None:
            session = google.auth.transport.requests.AuthorizedSession(
                auth, auth_request=RoutedAuthRequest(self.google.endpoints, requests.Session()))
        super().__init__(auth, session)
        self.auth = auth  # HTTPClient sets it only when it builds the session itself
        self.timeout = self.google.settings.google_timeout_seconds

    def request(self, method: str, endpoint: str, params: Any = None, data: Any = None,
                json: Any = None, files: Any = None, headers: Any = None
                ) -> requests.Response:
        url = self.google.endpoints.rewrite(endpoint)
        bucket = "sheets_read" if method.upper() == "GET" else "sheets_write"
        idempotent = not url.split("?", 1)[0].endswith(":append")
        what = f"Sheets {method.upper()} {unquote(url.split('/spreadsheets/', 1)[-1])[:90]}"
        parent = super().request

        def attempt() -> requests.Response:
            self.google.limiter.acquire(bucket)
            self.google.calls += 1
            try:
                return parent(method, url, params=params, data=data, json=json, files=files,
                              headers=headers)
            except gspread.exceptions.APIError as exc:
                response = exc.response
                raise self.google.error_from_response(
                    response.status_code, parse_body(response.content),
                    response.headers.get("retry-after"), what, self.scopes) from exc
            except google.auth.exceptions.RefreshError as exc:
                raise self.google.refresh_error(exc, what, self.scopes) from exc
            except CONNECTION_ERRORS as exc:
                raise self.google.connection_error(exc, what, idempotent) from exc

        return self.google.retrier.call(attempt, what)


class GoogleClient:
    """One set of Google connections for one cycle (not shared between threads)."""

    def __init__(self, settings: Settings, *,
                 scopes: dict[str, tuple[str, ...]] | None = None) -> None:
        self.settings = settings
        self.endpoints = Endpoints(settings.google_api_root.strip())
        self.scopes = {**SCOPES, **(scopes or {})}
        self.retrier = Retrier(settings.google_max_retry_seconds,
                               settings.google_retry_base_seconds)
        self.limiter = MinuteLimiter({
            "sheets_read": settings.google_sheets_reads_per_minute,
            "sheets_write": settings.google_sheets_writes_per_minute,
            "forms_expensive": settings.google_forms_lists_per_minute})
        self._closers: list[Callable[[], None]] = []
        self.calls = 0  # HTTP requests sent to the APIs (retries included, tokens not)

    # --- credentials -----------------------------------------------------------------

    @cached_property
    def key_info(self) -> dict[str, Any]:
        """The service-account key file, validated (ConfigError names the fix)."""
        import json

        path = self.settings.google_service_account_file
        if not path:
            raise ConfigError("GOOGLE_SERVICE_ACCOUNT_FILE no está definido: apúntalo en .env a "
                              "la llave JSON de la cuenta de servicio")
        try:
            info = json.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE={path} no se puede leer ({exc}); "
                              "corrige la ruta en .env") from exc
        except ValueError as exc:
            raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE={path} no es JSON ({exc}); "
                              "descarga la llave otra vez (consola de Cloud > Claves > JSON)"
                              ) from exc
        missing = [k for k in ("client_email", "token_uri", "private_key") if not info.get(k)]
        if missing:
            raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE={path} no tiene "
                              f"{', '.join(missing)}: debe ser la llave JSON de una cuenta de "
                              "servicio")
        return info  # type: ignore[no-any-return]

    @property
    def identity(self) -> str:
        return str(self.key_info["client_email"])

    def credentials(self, use: str) -> service_account.Credentials:
        """Credentials with the least scopes of ``use`` (delegated for Gmail/Calendar)."""
        try:
            creds = service_account.Credentials.from_service_account_info(
                self.key_info, scopes=list(self.scopes[use]))
        except ValueError as exc:
            raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE: la llave no se puede usar ({exc})"
                              ) from exc
        if use in DELEGATED:
            if not self.settings.google_delegated_user:
                raise ConfigError("GOOGLE_DELEGATED_USER está vacío: pon el buzón con el que "
                                  "saeko-sync envía correos y crea eventos (delegación de todo "
                                  "el dominio)")
            creds = creds.with_subject(self.settings.google_delegated_user)
        return creds

    # --- the libraries -----------------------------------------------------------------

    def sheets(self, write: bool = False) -> gspread.Client:
        """A gspread client (``spreadsheets`` scope to write, read-only otherwise)."""
        use = "sheets" if write else "sheets_read"
        attr = f"_gspread_{use}"
        if not hasattr(self, attr):
            bound = type("BoundSheetsHTTPClient", (SheetsHTTPClient,),
                         {"google": self, "scopes": self.scopes[use]})
            client = gspread.Client(auth=self.credentials(use), http_client=bound)
            self._closers.append(client.http_client.session.close)
            setattr(self, attr, client)
        return getattr(self, attr)  # type: ignore[no-any-return]

    def service(self, api: str) -> Any:
        """A googleapiclient Resource for forms / gmail / calendar."""
        attr = f"_service_{api}"
        if not hasattr(self, attr):
            name, version = DISCOVERY[api]
            transport = RoutedHttp(self.endpoints, self.settings.google_timeout_seconds)
            authed = google_auth_httplib2.AuthorizedHttp(self.credentials(api), http=transport)
            options = {"api_endpoint": self.endpoints.api_endpoint(api)} \
                if self.endpoints.root else None
            resource = build(name, version, http=authed, static_discovery=True,
                             cache_discovery=False, client_options=options)
            self._closers.append(transport.close)
            setattr(self, attr, resource)
        return getattr(self, attr)

    def execute(self, request: Any, *, use: str, what: str, bucket: str | None = None,
                idempotent: bool = True) -> Any:
        """Run a googleapiclient request with our retries; errors mapped to ours."""
        scopes = self.scopes[use]

        def attempt() -> Any:
            if bucket:
                self.limiter.acquire(bucket)
            self.calls += 1
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                raise self.error_from_response(
                    exc.status_code, parse_body(exc.content), exc.resp.get("retry-after"),
                    what, scopes) from exc
            except google.auth.exceptions.RefreshError as exc:
                raise self.refresh_error(exc, what, scopes, use in DELEGATED) from exc
            except CONNECTION_ERRORS as exc:
                raise self.connection_error(exc, what, idempotent) from exc

        return self.retrier.call(attempt, what)

    # --- error mapping helpers (errors.py does the mapping) ---------------------------

    def error_from_response(self, status: int, body: dict[str, Any], retry_after: str | None,
                            what: str, scopes: tuple[str, ...]) -> ConnectorError:
        return from_response(status, body, retry_after, what, identity=self.identity,
                             scopes=scopes)

    def refresh_error(self, exc: Exception, what: str, scopes: tuple[str, ...],
                      delegated: bool = False) -> ConnectorError:
        return from_refresh_error(exc, what, client_id=str(self.key_info.get("client_id", "")),
                                  scopes=scopes,
                                  subject=self.settings.google_delegated_user if delegated
                                  else None)

    @staticmethod
    def connection_error(exc: Exception, what: str, idempotent: bool) -> TransientError:
        message = f"{what}: falló la conexión con Google ({exc.__class__.__name__}: {exc})."
        if idempotent:
            return TransientError(message + " Se reintenta.")
        return LostResponse(message + " La petición pudo haberse aplicado; se comprueba antes "
                                      "de enviarla otra vez.")

    def close(self) -> None:
        for closer in self._closers:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - closing must not hide results
                log.debug("google.close_failed", error=str(exc))
        self._closers.clear()

    def __enter__(self) -> GoogleClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
