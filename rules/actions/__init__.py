"""The registry of action types rules can use (``podio.actualizar``, ``gmail.enviar``…).

Each tool's actions live in its connector package (``connectors/<tool>/rule_actions.py``)
and are loaded here through ``connectors.registry``: rules import no connector module
directly.
"""

from __future__ import annotations

from connectors import registry
from rules.actions.base import ActionType

REGISTRY: dict[str, ActionType] = {}


def register(action: ActionType) -> None:
    """Add an action type (a new connector's write-back primitive)."""
    REGISTRY[action.name] = action


for _action in registry.rule_actions():
    register(_action)
