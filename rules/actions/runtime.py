"""The client pool actions run with lives in ``connectors.clients``; this name stays while
``rules.engine``, ``rules.executor``, ``rules.actions.base``, ``saeko_sync.py`` and
``jobs/demo.py`` (owned by other work in progress) import it from here."""

from connectors.clients import ActionRuntime

__all__ = ["ActionRuntime"]
