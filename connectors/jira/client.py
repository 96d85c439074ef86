"""The Jira client: the real ``jira.JIRA`` (pycontribs, 3.10.x) configured from settings,
plus the one place that maps Jira's HTTP failures onto ``core.errors``.

Two library clients share the credentials:

* ``reader`` (search, issue, comments, fields …) lets the library retry on its own — 429,
  503 with Retry-After and connection errors, up to ``JIRA_MAX_RETRIES`` times, waiting
  what Retry-After asks (reference §6.3);
* ``writer`` (create, comment, transition, remote link) is built with ``max_retries=0``:
  the library would otherwise re-send a POST whose response was lost and create a second
  issue. Write-back primitives (actions.py) retry themselves after checking their marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import structlog
from jira import JIRA, JIRAError

from connectors.reach import connect_cause, unreachable
from core.errors import AuthError, ConfigError, RemoteDataError, TransientError
from core.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

SOURCE = "jira"
CREDENTIALS_HINT = ("revisa JIRA_EMAIL y JIRA_API_TOKEN en .env (un token de API de esa cuenta "
                    "de Atlassian, de id.atlassian.com > Seguridad > Tokens de API; los tokens "
                    "caducan)")


def _retry_after(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_error(exc: Exception, action: str) -> Exception:
    """The ``core.errors`` exception for a failure of the library or the network."""
    if isinstance(exc, JIRAError):
        status = exc.status_code
        text = (exc.text or "").strip()
        where = f"Jira ({action})"
        if status == 401:
            return AuthError(f"{where}: Jira rechazó las credenciales (401); {CREDENTIALS_HINT}",
                             status=401, body=text)
        if status == 403:
            return AuthError(f"{where}: la cuenta de JIRA_EMAIL no tiene permiso (403: "
                             f"{text or 'prohibido'}); dale permisos de ver y editar en los "
                             "proyectos de JIRA_PROJECTS", status=403, body=text)
        if status in (429, 503) or (status is not None and status >= 500):
            retry_after = _retry_after(exc.response)
            return TransientError(f"{where}: Jira respondió {status} ({text or 'ocupado'}); "
                                  "se reintenta más tarde" + (
                                      f" (Retry-After {retry_after:g} s)"
                                      if retry_after is not None else ""),
                                  status=status, body=text, retry_after=retry_after)
        if status == 404:
            return RemoteDataError(f"{where}: no existe o la cuenta de JIRA_EMAIL no lo ve "
                                   f"(404: {text})", status=404, body=text)
        if status == 410:
            return RemoteDataError(f"{where}: Jira retiró este servicio (410: {text}); "
                                   "actualiza la biblioteca jira", status=410, body=text)
        return RemoteDataError(f"{where}: Jira rechazó la petición ({status}: {text})",
                               status=status, body=text)
    if isinstance(exc, requests.RequestException):
        cause = connect_cause(exc) or f"se cortó la conexión ({exc.__class__.__name__})"
        return TransientError(f"Jira ({action}): {cause}; se reintenta más tarde; si "
                              "persiste, revisa JIRA_URL")
    return exc


@contextmanager
def jira_errors(action: str) -> Iterator[None]:
    """Translate library/network failures inside the block into ``core.errors``."""
    try:
        yield
    except (JIRAError, requests.RequestException) as exc:
        raise map_error(exc, action) from exc


def _require(settings: Settings) -> None:
    missing = [name for name, value in (("JIRA_URL", settings.jira_url),
                                        ("JIRA_EMAIL", settings.jira_email),
                                        ("JIRA_API_TOKEN",
                                         settings.jira_api_token.get_secret_value()))
               if not value]
    if missing:
        raise ConfigError(f"Jira no está configurado: define {', '.join(missing)} en .env")
    if not settings.jira_project_keys:
        raise ConfigError("JIRA_PROJECTS está vacío: lista las claves de los proyectos a "
                          "sincronizar, p. ej. SOP,DEV,PROD")


class JiraClient:
    """The reader and writer ``JIRA`` instances, built once per sync or action batch."""

    def __init__(self, settings: Settings) -> None:
        _require(settings)
        self.settings = settings
        self._auth = (settings.jira_email, settings.jira_api_token.get_secret_value())
        self._options: dict[str, Any] = {"server": settings.jira_url.rstrip("/")}
        # HTTP requests made (library retries aside): serverInfo at construction, then one
        # per call(), plus the field list the library reads before its first search.
        self.calls = 0
        # X-RateLimit-Limit / -Remaining of Jira's latest response, when it sends them
        # (reference §6.1): (credential, limit) -> {credential, limit, remaining, at}.
        self.rate_reports: dict[tuple[str, int], dict[str, Any]] = {}
        self.reader = self._watch(self._connect())
        if self.reader.deploymentType != "Cloud":
            raise ConfigError(f"JIRA_URL {settings.jira_url} no es un sitio de Jira Cloud "
                              f"(deploymentType={self.reader.deploymentType!r}); saeko-sync "
                              "usa la búsqueda mejorada de Cloud")
        self._writer: JIRA | None = None
        self._ticket_field_id: str | None = None
        self._fields_listed = False

    def _connect(self) -> JIRA:
        """The reader. Building it reads serverInfo (get_server_info, the default), which puts
        the library in Cloud mode, as the enhanced search needs (reference §1.2). The library
        retries 429, a 503 with Retry-After and dropped connections itself; any other 5xx it
        gives up on at once, so that one is retried here, JIRA_MAX_RETRIES
        times with backoff (JIRA_RETRY_BASE_SECONDS, at most JIRA_MAX_RETRY_SECONDS)."""
        settings = self.settings
        for number in range(settings.jira_max_retries + 1):
            self.calls += 1
            # The first try has no library retries: a site that cannot be reached at all (a
            # typo in JIRA_URL) is said at once instead of after minutes of reconnecting.
            first = number == 0
            try:
                with jira_errors("conexión a serverInfo"):
                    reader = JIRA(options=dict(self._options), basic_auth=self._auth,
                                  max_retries=0 if first else settings.jira_max_retries,
                                  timeout=settings.jira_timeout_seconds)
                reader._session.max_retries = settings.jira_max_retries
                return reader
            except RemoteDataError as exc:
                if exc.status == 404:
                    raise ConfigError(
                        f"JIRA_URL {settings.jira_url} no es un sitio de Jira: la URL es "
                        "incorrecta o no se encontró (404 en /rest/api/2/serverInfo); revisa "
                        "JIRA_URL en .env (p. ej. https://<sitio>.atlassian.net)") from exc
                raise
            except TransientError as exc:
                if first and (error := unreachable("Jira", self._options["server"],
                                                   "JIRA_URL", exc)) is not None:
                    raise error from exc
                status = exc.status or 0
                library_retries = status < 500 or (status == 503 and exc.retry_after is not None)
                if library_retries and first and number < settings.jira_max_retries:
                    continue  # again at once, now with the library's own waits and retries
                if library_retries:
                    raise  # not worth it, or the library has retried it already
                if number == settings.jira_max_retries:
                    raise TransientError(f"{exc} (sin éxito tras {number + 1} intentos)",
                                         status=exc.status, body=exc.body,
                                         retry_after=exc.retry_after) from exc
                wait = min(settings.jira_retry_base_seconds * 2 ** number,
                           settings.jira_max_retry_seconds)
                log.warning("jira.connect.retry", attempt=number + 1, wait=wait, error=str(exc))
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def writer(self) -> JIRA:
        """A client that never re-sends a request by itself (no server-info call)."""
        if self._writer is None:
            self._writer = self._watch(JIRA(
                options=dict(self._options), basic_auth=self._auth, max_retries=0,
                timeout=self.settings.jira_timeout_seconds, get_server_info=False))
        return self._writer

    def _watch(self, jira: JIRA) -> JIRA:
        """Note Jira's rate headers on every response of this library client."""
        jira._session.hooks.setdefault("response", []).append(self._note_rate)
        return jira

    def _note_rate(self, response: Any, *_args: Any, **_kwargs: Any) -> None:
        limit = str(response.headers.get("X-RateLimit-Limit", ""))
        remaining = str(response.headers.get("X-RateLimit-Remaining", ""))
        if limit.isdigit() and remaining.isdigit():
            self.rate_reports[(self.settings.jira_email, int(limit))] = {
                "credential": self.settings.jira_email, "limit": int(limit),
                "remaining": int(remaining),
                "at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")}

    def call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one library call with errors mapped (and counted)."""
        self.calls += 1
        with jira_errors(action):
            return fn(*args, **kwargs)

    def search(self, jql: str, **kwargs: Any) -> Any:
        """``enhanced_search_issues`` (one page unless maxResults=0). Before its first search
        with fields the library lists the site's fields once, to map names to ids."""
        if kwargs.get("fields") and not self._fields_listed:
            self._fields_listed = True
            self.calls += 1
        return self.call("buscar incidencias", self.reader.enhanced_search_issues, jql, **kwargs)

    def ticket_field_id(self) -> str:
        """The id of the custom field holding the Podio ticket (JIRA_TICKET_FIELD)."""
        if self._ticket_field_id is None:
            wanted = self.settings.jira_ticket_field
            if wanted.startswith("customfield_"):
                self._ticket_field_id = wanted
            else:
                fields = self.call("listar los campos", self.reader.fields)
                found = [f["id"] for f in fields if f.get("name", "").lower() == wanted.lower()]
                if not found:
                    raise ConfigError(f"JIRA_TICKET_FIELD {wanted!r} no es un campo de este "
                                      "sitio de Jira; crea el campo personalizado o pon su "
                                      "id (customfield_NNNNN)")
                self._ticket_field_id = found[0]
        return self._ticket_field_id

    def close(self) -> None:
        for client in (self.reader, self._writer):
            if client is not None:
                client.close()

