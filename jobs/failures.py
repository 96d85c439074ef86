"""Anticipated failures of a command, said as one line: the cause and the fix, in Spanish.

The CLI (``saeko_sync.main``) hands every exception that reaches it here: an error of
``core.errors`` already says what to do; a database that cannot be reached or has no tables
yet, and a port that cannot be opened, are turned into such a line too. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from core.errors import ConfigError, SaekoError

# Exit code of an anticipated failure: a setting or the environment needs fixing.
EXIT_FIX_AND_RETRY = 2
_NO_TABLE = ("no such table", "undefinedtable", 'relation "')
_DB_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("failed to resolve host", "name or service not known", "could not translate host"),
     "el servidor no existe (su nombre no se resuelve)"),
    (("connection refused",), "rechazó la conexión (¿corre PostgreSQL en ese servidor y puerto?)"),
    (("timeout expired", "timed out"), "no respondió a tiempo"),
    (("password authentication failed", "no password supplied"),
     "rechazó el usuario o la contraseña"),
    (("database \"",), "esa base de datos no existe en el servidor: créala o corrige el nombre"),
    (("unable to open database file",), "no se puede abrir ese archivo SQLite (¿existe la carpeta?"
                                        " ¿hay permiso de escritura?)"),
)


def safe_url(url: str) -> str:
    """A database URL without its password (user and password become ***)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def explain(exc: BaseException, database_url: Callable[[], str | None]) -> str | None:
    """The one line for an anticipated failure (None: not anticipated, a bug).
    ``database_url`` gives the DATABASE_URL in use, asked only for a database failure."""
    if isinstance(exc, SaekoError):
        return str(exc)
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return (f"DATABASE_URL no es una URL de base de datos válida ({exc}); usa "
                "sqlite:///var/saeko-sync.db o postgresql+psycopg://usuario:clave@host:5432/base")
    if isinstance(exc, DBAPIError):
        return database_failure(exc, database_url() or "DATABASE_URL")
    return None


def database_failure(exc: BaseException, url: str) -> str:
    """Why the store at ``url`` cannot be used, and the fix (also `doctor`'s line)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig)
    lowered = f"{text} {orig.__class__.__name__}".lower()
    where = safe_url(url)
    if any(marker in lowered for marker in _NO_TABLE) and "database \"" not in lowered:
        return (f"La base de datos {where} aún no tiene las tablas de saeko-sync: ejecuta "
                "`saeko-sync db upgrade` con ese DATABASE_URL (el demo usa su propia base, "
                "var/demo/saeko-demo.db: DATABASE_URL=sqlite:///var/demo/saeko-demo.db).")
    cause = next((words for markers, words in _DB_CAUSES
                  if any(marker in lowered for marker in markers)), None)
    if cause is None:
        cause = text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
    return (f"No se pudo usar la base de datos {where}: {cause}. Revisa DATABASE_URL en .env "
            "(o en el entorno).")


def port_error(host: str, port: int, exc: OSError, setting: str) -> ConfigError:
    """A port that could not be opened, as the error that names it and the way out."""
    if exc.errno == errno.EADDRINUSE:
        cause = "ya está en uso (otro proceso lo tiene abierto)"
    elif exc.errno == errno.EACCES:
        cause = "requiere permisos de administrador (usa un puerto mayor que 1023)"
    else:
        cause = f"no se pudo abrir ({exc.strerror or exc})"
    return ConfigError(f"El puerto {port} de {host} {cause}: elige otro con {setting} o "
                       "detén el proceso que lo usa.")
