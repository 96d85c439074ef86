"""Gmail API v1: users.messages.send (raw RFC 2822), users.messages.list with a subset of
the search syntax, users.messages.get (reference §5)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shlex
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

from sandbox.google.dispatch import Call, Router
from sandbox.google.errors import GoogleApiError, bad_request, not_found

API = "gmail"
# Quota units per method (reference §5.3).
SEND_UNITS, LIST_UNITS, GET_UNITS = 100, 5, 5
DEFAULT_MAX_RESULTS, MAX_MAX_RESULTS = 100, 500
METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
SNIPPET_CHARS = 120


def _b64url_decode(text: str) -> bytes:
    """base64url with or without '=' padding (Python pads, other clients do not; §5.1)."""
    cleaned = text.strip()
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _addresses(message: Message, *names: str) -> list[str]:
    values = [str(v) for name in names for v in message.get_all(name, [])]
    return [addr.lower() for _, addr in getaddresses(values) if addr]


class GmailApi:
    """Mailboxes (user address -> messages) and the handlers that serve them."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.mailboxes: dict[str, list[dict[str, Any]]] = {}
        self._now = now
        self._counter = 0
        # Whether Gmail keeps a client-supplied Message-ID is not documented (unsure in the
        # reference): True makes the sandbox replace it, as a cautious reading of Gmail.
        self.replace_message_id = False

    def register(self, router: Router) -> None:
        router.add(API, "gmail.users.messages.send", self.send, ("gmail_units", SEND_UNITS))
        router.add(API, "gmail.users.messages.list", self.list, ("gmail_units", LIST_UNITS))
        router.add(API, "gmail.users.messages.get", self.get, ("gmail_units", GET_UNITS))

    def _user(self, call: Call) -> str:
        """The mailbox: a service account has none, it must impersonate a user (DWD)."""
        subject = call.principal.subject
        if subject is None:
            raise GoogleApiError(400, "Precondition check failed.", reason="failedPrecondition",
                                 status="FAILED_PRECONDITION")
        user_id = call.params["userId"]
        if user_id not in ("me", subject):
            raise GoogleApiError(403, f"Delegation denied for {subject}", reason="forbidden")
        return subject

    # --- send ----------------------------------------------------------------------

    def send(self, call: Call) -> dict[str, Any]:
        user = self._user(call)
        body = call.json_body()
        raw = body.get("raw")
        if not raw:
            raise bad_request("'raw' RFC822 payload message string or uploading message via "
                              "/upload/* URL required", reason="invalidArgument")
        try:
            data = _b64url_decode(str(raw))
        except (binascii.Error, ValueError):
            raise bad_request("Invalid value for ByteString: raw", reason="invalidArgument") \
                from None
        message = BytesParser(policy=policy.default).parsebytes(data)
        recipients = _addresses(message, "To", "Cc", "Bcc")
        if not recipients:
            raise bad_request("Recipient address required", reason="invalidArgument")
        for address in recipients:
            if "@" not in address:
                raise bad_request(f"Invalid To header: {address}", reason="invalidArgument")
        self._counter += 1
        message_id = hashlib.sha1(f"{user}:{self._counter}".encode()).hexdigest()[:16]
        if message.get("Message-ID") is None or self.replace_message_id:
            del message["Message-ID"]
            message["Message-ID"] = f"<sandbox.{message_id}@mail.gmail.com>"
        # Gmail sends as the authenticated user: another From is rewritten (no send-as alias).
        if parseaddr(str(message.get("From", "")))[1].lower() != user.lower():
            del message["From"]
            message["From"] = user
        mailbox = self.mailboxes.setdefault(user, [])
        thread_id = body.get("threadId")
        if thread_id and not any(m["threadId"] == thread_id for m in mailbox):
            raise not_found()
        stored = self._store(message, message_id, thread_id or message_id)
        mailbox.append(stored)
        return {"id": stored["id"], "threadId": stored["threadId"], "labelIds": ["SENT"]}

    def _store(self, message: EmailMessage, message_id: str, thread_id: str) -> dict[str, Any]:
        text = html = None
        for part in message.walk():
            if part.is_multipart() or part.get_content_disposition() == "attachment":
                continue
            if part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and html is None:
                html = part.get_content()
        raw = message.as_bytes()
        return {
            "id": message_id, "threadId": thread_id, "labelIds": ["SENT"],
            "internalDate": str(int(self._now().timestamp() * 1000)),
            "sent_at": self._now(), "message": message, "raw": raw,
            "subject": str(message.get("Subject", "")),
            "from": parseaddr(str(message.get("From", "")))[1],
            "to": _addresses(message, "To"), "cc": _addresses(message, "Cc"),
            "bcc": _addresses(message, "Bcc"),
            "message_id": str(message.get("Message-ID", "")).strip(),
            "text": text, "html": html,
            "snippet": " ".join((text or re.sub(r"<[^>]+>", " ", html or "")).split())[
                :SNIPPET_CHARS],
        }

    # --- list / get ----------------------------------------------------------------

    def list(self, call: Call) -> dict[str, Any]:
        user = self._user(call)
        query = call.arg("q") or ""
        if query and not (call.principal.scopes & (call.method.scopes - {METADATA_SCOPE})):
            raise GoogleApiError(403, "Metadata scope does not support 'q' parameter",
                                 reason="forbidden")
        size = call.integer("maxResults", DEFAULT_MAX_RESULTS) or DEFAULT_MAX_RESULTS
        size = max(1, min(size, MAX_MAX_RESULTS))
        offset = int(call.arg("pageToken") or 0) if (call.arg("pageToken") or "0").isdigit() \
            else 0
        wanted = set(call.args("labelIds"))
        matches = [m for m in reversed(self.mailboxes.get(user, []))  # newest first
                   if wanted <= set(m["labelIds"]) and _matches(m, query, self._now())]
        page = matches[offset:offset + size]
        body: dict[str, Any] = {"resultSizeEstimate": len(matches)}
        if page:
            body["messages"] = [{"id": m["id"], "threadId": m["threadId"]} for m in page]
        if offset + size < len(matches):
            body["nextPageToken"] = str(offset + size)
        return body

    def get(self, call: Call) -> dict[str, Any]:
        user = self._user(call)
        stored = next((m for m in self.mailboxes.get(user, []) if m["id"] == call.params["id"]),
                      None)
        if stored is None:
            raise not_found()
        fmt = call.arg("format") or "full"
        if fmt not in ("minimal", "full", "raw", "metadata"):
            raise bad_request(f"Invalid value at 'format', \"{fmt}\"")
        out: dict[str, Any] = {
            "id": stored["id"], "threadId": stored["threadId"], "labelIds": stored["labelIds"],
            "snippet": stored["snippet"], "sizeEstimate": len(stored["raw"]),
            "historyId": str(1000 + int(stored["internalDate"]) % 100000),
            "internalDate": stored["internalDate"]}
        if fmt == "raw":
            out["raw"] = _b64url(stored["raw"])
        elif fmt == "metadata":
            names = {n.lower() for n in call.args("metadataHeaders")}
            headers = [{"name": k, "value": str(v)} for k, v in stored["message"].items()
                       if not names or k.lower() in names]
            out["payload"] = {"mimeType": stored["message"].get_content_type(),
                              "headers": headers}
        elif fmt == "full":
            out["payload"] = _part(stored["message"], "")
        return out


def _part(message: Message, part_id: str) -> dict[str, Any]:
    part: dict[str, Any] = {
        "partId": part_id, "mimeType": message.get_content_type(),
        "filename": message.get_filename() or "",
        "headers": [{"name": k, "value": str(v)} for k, v in message.items()]}
    if message.is_multipart():
        part["body"] = {"size": 0}
        children = message.get_payload()
        assert isinstance(children, list)
        part["parts"] = [_part(child, f"{part_id}.{i}".lstrip(".") if part_id else str(i))
                         for i, child in enumerate(children)]
    else:
        payload = message.get_payload(decode=True) or b""
        assert isinstance(payload, bytes)
        part["body"] = {"size": len(payload), "data": _b64url(payload)}
    return part


def _terms(query: str) -> list[tuple[str | None, str]]:
    try:
        tokens = shlex.split(query, posix=True)
    except ValueError:
        tokens = query.split()
    terms: list[tuple[str | None, str]] = []
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep and re.fullmatch(r"[A-Za-z0-9_]+", key):
            terms.append((key.lower(), value))
        else:
            terms.append((None, token))
    return terms


def _date(value: str) -> datetime | None:
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None)
    for fmt in ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def _matches(message: dict[str, Any], query: str, now: datetime) -> bool:
    """The subset of Gmail search the project relies on (§5.2); other words match text."""
    for key, value in _terms(query):
        needle = value.lower().strip("<>")
        if key == "rfc822msgid":
            if message["message_id"].lower().strip("<>") != needle:
                return False
        elif key in ("from", "to", "cc", "bcc"):
            field = [message["from"]] if key == "from" else message[key]
            if not any(needle in address for address in field):
                return False
        elif key == "subject":
            if needle not in message["subject"].lower():
                return False
        elif key in ("in", "label"):
            if needle in ("anywhere", "all"):
                continue
            if needle.upper() not in message["labelIds"]:
                return False
        elif key in ("after", "before"):
            bound = _date(value)
            if bound is None:
                continue
            if key == "after" and message["sent_at"] < bound:
                return False
            if key == "before" and message["sent_at"] >= bound:
                return False
        elif key in ("newer_than", "older_than"):
            match = re.match(r"^(\d+)([dmy])$", value)
            if not match:
                continue
            days = int(match.group(1)) * {"d": 1, "m": 30, "y": 365}[match.group(2)]
            cut = now - timedelta(days=days)
            if (key == "newer_than") != (message["sent_at"] >= cut):
                return False
        else:
            haystack = " ".join([message["subject"], message["text"] or "",
                                 message["html"] or ""]).lower()
            if (f"{key}:{value}" if key else value).lower() not in haystack:
                return False
    return True
