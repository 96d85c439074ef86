"""Links into Podio for people: an item's own URL, as Podio gives it (``item_url`` and the
short fallback live in ``store.entities``, where rules can reach them too)."""

from __future__ import annotations

from store.entities import PODIO_ITEM_URL, item_url

__all__ = ["PODIO_ITEM_URL", "PODIO_TASK_URL", "item_url"]

PODIO_TASK_URL = "https://podio.com/tasks/{task_id}"
