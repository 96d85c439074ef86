"""Comments of the Podio emulator (reference §8)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Actor, ts
from sandbox.podio.store import ItemStore
from sandbox.world import PODIO_SPACE_ID

FIRST_COMMENT_ID = 40_000_001  # arbitrary base for comment ids
COMMENTABLE = ("item", "task")
_MENTION_RE = re.compile(r"@\[([^\]]+)\]\((user|space):(\d+)\)")


@dataclass
class Comment:
    comment_id: int
    ref_type: str
    ref_id: int
    value: str
    external_id: str | None
    embed_url: str | None
    created_on: datetime
    actor: Actor
    deleted: bool = False


class CommentStore:
    """Comments on items and tasks."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self.comments: dict[int, Comment] = {}
        self.next_id = FIRST_COMMENT_ID

    def add(self, ref_type: str, ref_id: int, body: Any, actor: Actor,
            now: datetime) -> Comment:
        if ref_type not in COMMENTABLE:
            raise PodioError(400, f"The sandbox takes comments on {list(COMMENTABLE)}")
        if not isinstance(body, dict) or not isinstance(body.get("value"), str) \
                or not body["value"].strip():
            raise PodioError(400, "A comment needs a non-empty 'value'")
        for _name, kind, ident in _MENTION_RE.findall(body["value"]):
            if kind == "user" and int(ident) not in self.store.users:
                raise PodioError(400, f"User {ident} mentioned in the comment has no access",
                                 error="alert.no_access")
        comment = Comment(self.next_id, ref_type, ref_id, body["value"],
                          _opt_str(body.get("external_id")), _opt_str(body.get("embed_url")),
                          now, actor)
        self.next_id += 1
        self.comments[comment.comment_id] = comment
        return comment

    def on(self, ref_type: str, ref_id: int) -> list[Comment]:
        return [c for c in self.comments.values()
                if not c.deleted and c.ref_type == ref_type and c.ref_id == ref_id]

    def get(self, comment_id: int) -> Comment:
        comment = self.comments.get(comment_id)
        if comment is None or comment.deleted:
            raise PodioError(404, f"No comment with id {comment_id}")
        return comment

    def json(self, comment: Comment) -> dict[str, Any]:
        """The comment object (§8)."""
        rich = _MENTION_RE.sub(lambda m: f'<a href="https://podio.com/users/{m.group(3)}">'
                                         f'{html.escape(m.group(1))}</a>',
                               html.escape(comment.value, quote=False))
        return {
            "comment_id": comment.comment_id, "value": comment.value,
            "rich_value": rich.replace("\n", "<br />"), "external_id": comment.external_id,
            "space_id": PODIO_SPACE_ID, "created_on": ts(comment.created_on),
            "created_by": self.store.actor_ref(comment.actor),
            "created_via": comment.actor.client.via(),
            "ref": {"type": comment.ref_type, "id": comment.ref_id}, "files": [],
            "embed": {"original_url": comment.embed_url} if comment.embed_url else None,
            "like_count": 0, "is_liked": False,
        }


def _opt_str(value: Any) -> str | None:
    return str(value) if value is not None else None
