"""The one place where Google answers become saeko-sync errors (core/errors.py).

Both libraries funnel through here: gspread's ``APIError`` and googleapiclient's
``HttpError`` (status + Google's JSON error body), google-auth's ``RefreshError`` (the token
endpoint refused the service account) and transport failures.
"""

from __future__ import annotations

import json
from typing import Any

from core.errors import AuthError, ConnectorError, RemoteDataError, TransientError

# Worth retrying (reference §7): timeouts, rate limits and server errors...
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# ...and 403s that are rate limits in the legacy shape (Calendar, Drive).
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})


class LostResponse(TransientError):
    """The connection broke after a non-idempotent request was sent: it may have been
    applied. The caller must check (by marker or id) before sending it again."""


def parse_body(content: bytes | str | None) -> dict[str, Any]:
    """Google's JSON error body, or {} when the answer is not JSON."""
    if not content:
        return {}
    try:
        body = json.loads(content)
    except (ValueError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (HTTP dates are not used by Google APIs)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _reasons(error: dict[str, Any]) -> set[str]:
    reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict)}
    reasons |= {str(d.get("reason")) for d in error.get("details") or []
                if isinstance(d, dict) and d.get("reason")}
    return reasons


def from_response(status: int, body: dict[str, Any], retry_after: str | None, what: str, *,
                  identity: str = "la cuenta de servicio", scopes: tuple[str, ...] = ()
                  ) -> ConnectorError:
    """A Google error answer -> TransientError / AuthError / RemoteDataError, naming the fix."""
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    assert isinstance(error, dict)
    message = str(error.get("message") or body.get("error_description") or f"HTTP {status}")
    reasons = _reasons(error)
    wait = retry_after_seconds(retry_after)
    if status in RETRYABLE_STATUSES or (status == 403 and reasons & RATE_LIMIT_REASONS):
        return TransientError(f"{what}: Google respondió {status} ({message}); se reintenta "
                              "más tarde.",
                              status=status, body=body, retry_after=wait)
    if status == 401:
        return AuthError(f"{what}: Google rechazó el token de acceso ({message}). Revisa la "
                         "llave de GOOGLE_SERVICE_ACCOUNT_FILE (una llave revocada o un "
                         "token_uri equivocado fallan aquí).", status=status, body=body)
    if status == 403 and reasons & SCOPE_REASONS:
        return AuthError(f"{what}: al token de acceso le falta el alcance (scope) que esta "
                         f"llamada necesita ({message}). saeko-sync pide "
                         f"{', '.join(scopes) or 'ninguno'}; cuando actúa como "
                         "GOOGLE_DELEGATED_USER esos alcances también deben estar autorizados "
                         "para el client_id de la llave (consola de administración > "
                         "Seguridad > Controles de API > Delegación de todo el dominio).",
                         status=status, body=body)
    if status == 403:
        return AuthError(f"{what}: permiso denegado ({message}). Comparte el archivo con "
                         f"{identity} (Editor).", status=status, body=body)
    if status == 400 and error.get("status") == "FAILED_PRECONDITION":
        return AuthError(f"{what}: {message} Una cuenta de servicio no tiene buzón: define "
                         "GOOGLE_DELEGATED_USER y autoriza la delegación de todo el dominio.",
                         status=status, body=body)
    if status == 404:
        return RemoteDataError(f"{what}: no se encontró ({message}). Revisa el id en .env y "
                               f"que esté compartido con {identity}.", status=status, body=body)
    return RemoteDataError(f"{what}: Google rechazó la petición: {status} {message}",
                           status=status, body=body)


def from_refresh_error(exc: Exception, what: str, *, client_id: str = "",
                       scopes: tuple[str, ...] = (), subject: str | None = None
                       ) -> ConnectorError:
    """google-auth's RefreshError (token endpoint said no) -> AuthError or TransientError."""
    text = str(exc.args[0] if exc.args else exc)
    retryable = getattr(exc, "retryable", False)
    if retryable:
        return TransientError(f"{what}: el servicio de tokens no está disponible ({text}); se "
                              "reintenta más tarde.")
    if "unauthorized_client" in text:
        return AuthError(f"{what}: delegación de todo el dominio rechazada ({text}). En la "
                         "consola de administración autoriza el client id "
                         f"{client_id or '(ver el archivo de la llave)'} para: "
                         f"{', '.join(scopes)}; GOOGLE_DELEGATED_USER={subject}.")
    if "invalid_scope" in text:
        return AuthError(f"{what}: alcance rechazado ({text}): {', '.join(scopes)}.")
    return AuthError(f"{what}: la cuenta de servicio no obtuvo un token ({text}). Revisa "
                     "GOOGLE_SERVICE_ACCOUNT_FILE (una llave revocada o equivocada, un "
                     "token_uri equivocado) y el reloj del equipo.")
