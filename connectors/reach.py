"""A tool whose host cannot be reached at all: why, in words, and the one error for it.

A client that has never had an answer from its host and cannot even open a connection (the
name does not resolve, nothing listens on the port, the connect times out) raises
``core.errors.UnreachableError`` at once instead of retrying for minutes: that is almost
always a wrong URL setting, not a passing fault. Once the host has answered, a failed
connection is a transient fault again and the client's retries apply (a restart of the
tool mid-run, the chaos suite's faults).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from core.errors import UnreachableError

_NAME_NOT_FOUND = ("name or service not known", "temporary failure in name resolution",
                   "nodename nor servname", "failed to resolve", "getaddrinfo failed")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (causes, contexts, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None),
                   *(arg for arg in current.args[:1])]
        todo.extend(e for e in wrapped if isinstance(e, BaseException))


def connect_cause(exc: BaseException) -> str | None:
    """Why a connection could not be opened, in Spanish; None when ``exc`` is not a failure
    to connect (a dropped connection or a read timeout on an open one)."""
    causes = list(_chain(exc))
    texts = " ".join(str(e).lower() for e in causes)
    names = " ".join(e.__class__.__name__ for e in causes)
    if any(isinstance(e, socket.gaierror) for e in causes) or any(
            text in texts for text in _NAME_NOT_FOUND) or "NameResolutionError" in names:
        return "el nombre del servidor no existe (no se resuelve)"
    if any(isinstance(e, ConnectionRefusedError) for e in causes) or "connection refused" \
            in texts:
        return "rechazó la conexión (nada escucha en esa dirección y puerto)"
    if "ConnectTimeout" in names:
        return "no respondió al intentar conectar (tiempo agotado)"
    if "ConnectError" in names or "NewConnectionError" in names:
        return f"no se pudo abrir la conexión ({causes[-1]})"
    return None


def unreachable(tool: str, url: str, setting: str, exc: BaseException
                ) -> UnreachableError | None:
    """The error for a first connection to ``url`` that failed (None if ``exc`` is some
    other failure): it names the URL and the setting to fix."""
    cause = connect_cause(exc)
    if cause is None:
        return None
    return UnreachableError(f"No se pudo conectar con {tool} en {url}: {cause}. Revisa "
                            f"{setting} en .env (o en el entorno).", url=url, setting=setting)
