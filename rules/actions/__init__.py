"""The registry of action types rules can use (``podio.actualizar``, ``gmail.enviar``…)."""

from __future__ import annotations

from rules.actions import google, jira, podio
from rules.actions.base import ActionType

REGISTRY: dict[str, ActionType] = {
    action.name: action for action in [*podio.ACTIONS, *jira.ACTIONS, *google.ACTIONS]
}


def register(action: ActionType) -> None:
    """Add an action type (a new connector's write-back primitive)."""
    REGISTRY[action.name] = action
