"""Links into Podio for people: an item's own URL, as Podio gives it."""

from __future__ import annotations

from typing import Any

# An item's own ``link`` (GET /item/{id}, reference §5.2) carries the organisation, space
# and app slugs; this short form is only the fallback when the item's payload is not at
# hand: whether Podio serves it is unverified (docs/fidelidad.md).
from store.entities import PODIO_ITEM_URL

PODIO_TASK_URL = "https://podio.com/tasks/{task_id}"


def item_url(item_id: int | str, raw: Any = None) -> str:
    """The item's link from its stored payload (``raw``), else the short form."""
    link = raw.get("link") if isinstance(raw, dict) else None
    return str(link) if link else PODIO_ITEM_URL.format(item_id=item_id)
