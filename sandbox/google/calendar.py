"""Calendar API v3: events insert / get / list / patch / delete (reference §6), with
attendees, recurrence, Meet conference data, extended properties and client-supplied ids.

A deleted event stays, ``status: "cancelled"``: ``get`` still returns it, ``list`` shows it
only with ``showDeleted`` or a sync token, its id stays taken (insert answers 409), a second
delete answers 410 ``deleted``, and a patch with ``status: "confirmed"`` restores it."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.google.dispatch import Call, Router
from sandbox.google.errors import GoogleApiError, bad_request, not_found

API = "calendar"
QUOTA = ("calendar", 1)
DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS = 250, 2500  # events.list (§6.3)
CALENDAR_TIME_ZONE = "America/Tijuana"
_EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")  # base32hex, 5-1024 chars (§6.2)
_RECURRENCE = ("RRULE:", "EXRULE:", "RDATE:", "EXDATE:")
PROPERTY_KEY_MAX, PROPERTY_VALUE_MAX = 44, 1024  # extended property limits (Calendar docs)
SYNC_FORBIDDEN = ("iCalUID", "orderBy", "privateExtendedProperty", "q",
                  "sharedExtendedProperty", "timeMin", "timeMax", "updatedMin")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_instant(text: str, zone: str | None, where: str) -> datetime:
    """RFC 3339 -> aware datetime; an offset is mandatory unless a timeZone is given."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid {where}.", reason="invalid") from None
    if moment.tzinfo is None:
        if not zone:
            raise bad_request(f"Missing time zone definition for {where}.", reason="required")
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


def _zone(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"Invalid time zone definition for {where}.", reason="invalid") \
            from None
    return str(value)


def _meet_code(request_id: str) -> str:
    letters = "".join(chr(97 + b % 26) for b in hashlib.sha256(request_id.encode()).digest())
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:10]}"


class CalendarApi:
    """Calendars (calendar id -> event id -> event) and the handlers that serve them."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.calendars: dict[str, dict[str, dict[str, Any]]] = {}
        self._now = now
        self._changes = 0
        self._generated = 0

    def register(self, router: Router) -> None:
        router.add(API, "calendar.events.insert", self.insert, QUOTA)
        router.add(API, "calendar.events.get", self.get, QUOTA)
        router.add(API, "calendar.events.list", self.list, QUOTA)
        router.add(API, "calendar.events.patch", self.patch, QUOTA)
        router.add(API, "calendar.events.delete", self.delete, QUOTA)

    def _calendar(self, call: Call) -> tuple[str, dict[str, dict[str, Any]]]:
        calendar_id = call.params["calendarId"]
        if calendar_id == "primary":
            calendar_id = call.principal.user
        if calendar_id not in self.calendars and calendar_id != call.principal.user:
            raise not_found("Not Found")
        return calendar_id, self.calendars.setdefault(calendar_id, {})

    def _touch(self, event: dict[str, Any]) -> None:
        self._changes += 1
        event["_change"] = self._changes
        event["updated"] = _stamp(self._now())
        event["etag"] = f'"{3_400_000_000_000_000 + self._changes}"'

    # --- validation ----------------------------------------------------------------

    def _check(self, call: Call, event: dict[str, Any]) -> None:
        bounds = {}
        for side in ("start", "end"):
            when = event.get(side)
            if not isinstance(when, dict) or not (when.get("dateTime") or when.get("date")):
                raise bad_request(f"Missing {side} time.", reason="required")
            zone = _zone(when.get("timeZone"), f"{side} time")
            if when.get("dateTime"):
                bounds[side] = _parse_instant(str(when["dateTime"]), zone, f"{side} time")
            else:
                day = date.fromisoformat(str(when["date"]))
                bounds[side] = datetime.combine(day, time(), ZoneInfo(zone or CALENDAR_TIME_ZONE))
        if bounds["end"] < bounds["start"]:
            raise bad_request("The specified time range is empty.", reason="timeRangeEmpty")
        recurrence = event.get("recurrence") or []
        for line in recurrence:
            if not str(line).startswith(_RECURRENCE):
                raise bad_request("Invalid recurrence rule.", reason="invalid")
        if recurrence and not event["start"].get("timeZone"):
            raise bad_request("Missing time zone definition for start time.", reason="required")
        if event.get("attendees") and call.principal.subject is None:
            raise GoogleApiError(403, "Service accounts cannot invite attendees without "
                                      "Domain-Wide Delegation of Authority.",
                                 reason="forbiddenForServiceAccounts")
        for scope in ("private", "shared"):
            for key, value in ((event.get("extendedProperties") or {}).get(scope) or {}).items():
                if len(key) > PROPERTY_KEY_MAX or len(str(value)) > PROPERTY_VALUE_MAX:
                    raise bad_request("Invalid extended property value.", reason="invalid")
        event["_start"], event["_end"] = bounds["start"], bounds["end"]

    def _conference(self, call: Call, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Meet links need conferenceDataVersion=1 on the request (§6.1)."""
        requested = (body.get("conferenceData") or {}).get("createRequest")
        if call.integer("conferenceDataVersion", 0) != 1:
            if "conferenceData" in body:
                event.pop("conferenceData", None)  # version 0 ignores conference data
            return
        if not requested:
            return
        if call.principal.subject is None:  # [C] commonly observed without DWD (§6.1)
            raise bad_request("Invalid conference type value.", reason="invalid")
        kind = (requested.get("conferenceSolutionKey") or {}).get("type")
        if kind != "hangoutsMeet" or not requested.get("requestId"):
            raise bad_request("Invalid conference type value.", reason="invalid")
        code = _meet_code(str(requested["requestId"]))
        link = f"https://meet.google.com/{code}"
        # Google creates the conference asynchronously (pending -> success); the sandbox
        # answers success at once.
        event["conferenceData"] = {
            "createRequest": {**requested, "status": {"statusCode": "success"}},
            "entryPoints": [{"entryPointType": "video", "uri": link,
                             "label": f"meet.google.com/{code}"}],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code}
        event["hangoutLink"] = link

    # --- handlers ------------------------------------------------------------------

    def insert(self, call: Call) -> dict[str, Any]:
        calendar_id, events = self._calendar(call)
        body = call.json_body()
        event_id = body.get("id")
        if event_id is not None:
            if not _EVENT_ID.match(str(event_id)):
                raise bad_request("Invalid resource id value.", reason="invalid")
            if event_id in events:
                raise GoogleApiError(409, "The requested identifier already exists.",
                                     reason="duplicate")
        else:
            self._generated += 1
            event_id = hashlib.sha1(f"{calendar_id}:{self._generated}".encode()).hexdigest()[:26]
        event = copy.deepcopy(body)
        event.update(kind="calendar#event", id=event_id, status=body.get("status", "confirmed"),
                     created=_stamp(self._now()), sequence=0, eventType="default",
                     iCalUID=f"{event_id}@google.com",
                     creator={"email": call.principal.user},
                     organizer={"email": calendar_id, "self": True},
                     htmlLink="https://www.google.com/calendar/event?eid="
                              + base64.urlsafe_b64encode(
                                  f"{event_id} {calendar_id}".encode()).decode().rstrip("="))
        event.setdefault("reminders", {"useDefault": True})
        if event.get("attendees"):
            event["attendees"] = [{"responseStatus": "needsAction", **a}
                                  for a in event["attendees"]]
        self._check(call, event)
        self._conference(call, event, body)
        self._touch(event)
        events[event_id] = event
        return _public(event)

    def get(self, call: Call) -> dict[str, Any]:
        _, events = self._calendar(call)
        event = events.get(call.params["eventId"])
        if event is None:
            raise not_found("Not Found")
        return _public(event)

    def patch(self, call: Call) -> dict[str, Any]:
        _, events = self._calendar(call)
        current = events.get(call.params["eventId"])
        if current is None:
            raise not_found("Not Found")
        body = call.json_body()
        draft = _merge(copy.deepcopy(current), body)
        if "attendees" in body and draft.get("attendees"):
            draft["attendees"] = [{"responseStatus": "needsAction", **a}
                                  for a in draft["attendees"]]
        self._check(call, draft)
        self._conference(call, draft, body)
        if (draft["_start"], draft["_end"], draft.get("recurrence")) != (
                current["_start"], current["_end"], current.get("recurrence")):
            draft["sequence"] = int(current.get("sequence", 0)) + 1  # a rescheduling
        self._touch(draft)
        events[draft["id"]] = draft
        return _public(draft)

    def delete(self, call: Call) -> None:
        """events.delete: 204 with no body; the event becomes ``cancelled`` (attendees are
        told with ``sendUpdates``). Deleting it again answers 410 ``deleted``."""
        _, events = self._calendar(call)
        current = events.get(call.params["eventId"])
        if current is None:
            raise not_found("Not Found")
        if current.get("status") == "cancelled":
            raise GoogleApiError(410, "Resource has been deleted", reason="deleted")
        current["status"] = "cancelled"
        self._touch(current)

    def list(self, call: Call) -> dict[str, Any]:
        calendar_id, events = self._calendar(call)
        sync_token = call.arg("syncToken")
        if sync_token is not None:
            clashing = [name for name in SYNC_FORBIDDEN if call.arg(name) is not None]
            if clashing:
                raise bad_request(f"Sync token cannot be used with {clashing[0]}.",
                                  reason="invalid")
        if call.arg("orderBy") == "startTime" and not call.flag("singleEvents"):
            raise bad_request("The requested ordering is not available for the particular "
                              "query.", reason="badRequest")
        selected = [e for e in events.values() if self._selected(call, e, sync_token)]
        key = (lambda e: e["_start"]) if call.arg("orderBy") == "startTime" \
            else (lambda e: e["_change"])
        selected.sort(key=key)
        size = max(1, min(call.integer("maxResults", DEFAULT_MAX_RESULTS) or
                          DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS))
        offset = _page_offset(call.arg("pageToken"))
        page = selected[offset:offset + size]
        body: dict[str, Any] = {
            "kind": "calendar#events", "etag": f'"{self._changes}"', "summary": calendar_id,
            "updated": _stamp(self._now()), "timeZone": CALENDAR_TIME_ZONE,
            "accessRole": "owner", "defaultReminders": [{"method": "popup", "minutes": 10}],
            "items": [_public(e) for e in page]}
        if offset + size < len(selected):
            body["nextPageToken"] = _page_token(offset + size)
        else:
            body["nextSyncToken"] = _page_token(self._changes, "s")
        return body

    def _selected(self, call: Call, event: dict[str, Any], sync_token: str | None) -> bool:
        if sync_token is not None:
            return bool(event["_change"] > _page_offset(sync_token, "s"))
        if event.get("status") == "cancelled" and not call.flag("showDeleted"):
            return False
        private = (event.get("extendedProperties") or {}).get("private") or {}
        shared = (event.get("extendedProperties") or {}).get("shared") or {}
        for wanted, props in ((call.args("privateExtendedProperty"), private),
                              (call.args("sharedExtendedProperty"), shared)):
            for constraint in wanted:
                name, _, value = constraint.partition("=")
                if props.get(name) != value:
                    return False
        if call.arg("iCalUID") and event.get("iCalUID") != call.arg("iCalUID"):
            return False
        text = (call.arg("q") or "").lower()
        if text and text not in f"{event.get('summary', '')} {event.get('description', '')}" \
                .lower():
            return False
        time_min, time_max = call.arg("timeMin"), call.arg("timeMax")
        lower = _parse_instant(time_min, None, "timeMin") if time_min else None
        upper = _parse_instant(time_max, None, "timeMax") if time_max else None
        if lower and upper and lower >= upper:
            raise bad_request("The specified time range is empty.", reason="timeRangeEmpty")
        if lower and event["_end"] <= lower:  # timeMin bounds the event's end (§6.3)
            return False
        if upper and event["_start"] >= upper:  # timeMax bounds the event's start
            return False
        updated_min = call.arg("updatedMin")
        if updated_min:
            bound = _parse_instant(updated_min, None, "updatedMin").astimezone(UTC)
            updated = datetime.fromisoformat(event["updated"].replace("Z", "+00:00"))
            if updated < bound:
                return False
        return True


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: objects merge, arrays and scalars replace, null clears (§6.4)."""
    for key, value in patch.items():
        if key in ("id", "kind", "etag", "created", "updated", "iCalUID"):
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key] = _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _public(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the API shows it: times normalised with their offset."""
    out = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
    for side in ("start", "end"):
        if out[side].get("dateTime"):
            out[side]["dateTime"] = event[f"_{side}"].isoformat()
    return out


def _page_token(offset: int, kind: str = "p") -> str:
    return base64.urlsafe_b64encode(json.dumps({kind: offset}).encode()).decode().rstrip("=")


def _page_offset(token: str | None, kind: str = "p") -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))[kind])
    except (ValueError, KeyError, TypeError):
        if kind == "s":
            raise GoogleApiError(410, "Sync token is no longer valid, a full sync is required.",
                                 reason="fullSyncRequired") from None
        raise bad_request("Invalid page token value.", reason="invalid") from None
