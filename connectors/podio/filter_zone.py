"""The zone Podio reads ``created_on`` / ``last_edit_on`` filter bounds in.

Podio's objects carry those times in UTC (Item model: "date and time in UTC", reference
§0), but whether the bounds of a filter are read in UTC or in the zone of the user who
asks is not documented (docs/fidelidad.md). A bound read in the wrong frame moves by the
zone's offset: for Tijuana (UTC-8/-7) a bound meant in UTC is read 7-8 hours later, and
every edit of those hours would be skipped for good.

So, unless PODIO_FILTER_TIMEZONE says which, the frame is found out, never assumed:

- the incremental read starts at ``cursor - overlap``, and the item at the cursor (the
  newest one committed) is inside that window. The first page, asked in UTC, must hold
  some item of the window: then UTC is confirmed at no extra cost (idle cycles included);
- otherwise (or when a bound is needed before any window, on a full sync's later pages)
  ``detect`` asks: the newest item's edit time ``t``, then the first item from ``t`` with
  the bound written in UTC and then in the user's zone; the frame that gives back ``t`` is
  Podio's (2-3 calls, once per client);
- undecided (an empty app, an item edited between the calls): the bound is written in
  whichever frame gives the earlier instant (``safe_bound``), so it is never later than
  meant whichever way Podio reads it.

Every wrong conclusion these checks could reach errs towards an earlier bound (items read
again, counted as unchanged), never a later one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from connectors.podio.mapping import PODIO_TIME_FORMAT, item_last_edit

if TYPE_CHECKING:
    from connectors.podio.client import PodioClient

log = structlog.get_logger(__name__)

UTC_FRAME = "UTC"


def bound_text(moment: datetime, frame: str | None, user_zone: ZoneInfo) -> str:
    """A naive-UTC instant as a filter bound in ``frame`` (UTC or a zone name); None
    (unknown) gives ``safe_bound``."""
    if frame is None:
        return safe_bound(moment, user_zone)
    if frame == UTC_FRAME:
        return moment.strftime(PODIO_TIME_FORMAT)
    local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo(frame))
    return local.strftime(PODIO_TIME_FORMAT)


def safe_bound(moment: datetime, user_zone: ZoneInfo) -> str:
    """The bound that means ``moment`` or earlier whichever frame Podio reads it in: the
    smaller of its UTC and its user-zone writing (the same order as the instants)."""
    return min(bound_text(moment, UTC_FRAME, user_zone),
               bound_text(moment, user_zone.key, user_zone))


def window_confirms_utc(page: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Whether a page asked from ``start`` (written in UTC) holds an item edited within
    [start, end]: read in a zone west of UTC the bound would have excluded them all (and
    east of it, reading earlier, is safe anyway)."""
    for item in page.get("items") or []:
        try:
            stamp = item_last_edit(item)
        except ValueError:
            continue
        if start <= stamp <= end:
            return True
    return False


def detect(client: PodioClient, app_id: int, user_zone: ZoneInfo) -> str | None:
    """Podio's frame for filter bounds, asked of one app (None when it cannot tell)."""
    if _same_offset(user_zone):
        return UTC_FRAME
    newest = (client.filter_items(app_id, {"sort_by": "last_edit_on", "sort_desc": True,
                                           "limit": 1}) or {}).get("items") or []
    if not newest:
        return None
    anchor = item_last_edit(newest[0])
    for frame in (UTC_FRAME, user_zone.key):
        body = {"filters": {"last_edit_on": {"from": bound_text(anchor, frame, user_zone)}},
                "sort_by": "last_edit_on", "sort_desc": False, "limit": 1}
        first = (client.filter_items(app_id, body) or {}).get("items") or []
        if first and item_last_edit(first[0]) == anchor:
            log.info("podio.filter_zone", frame=frame, app_id=app_id)
            return frame
    return None


def _same_offset(zone: ZoneInfo) -> bool:
    now = datetime.now(UTC)
    return now.astimezone(zone).utcoffset() == now.utcoffset()
