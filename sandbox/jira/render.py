"""JSON shapes of the emulated Jira (reference §2-§3): issues, users, statuses, comments,
changelogs. ``self`` URLs are absolute and route back to the sandbox (the library follows
them), with the API version of the request echoed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.jira.site import CATEGORIES, ISSUE_TYPES, PRIORITIES, RESOLUTIONS, Site, Status
from sandbox.jira.store import Comment, History, Issue, RemoteLink, plain_text

# Search results embed a truncated changelog (20 or 40 entries are reported, reference §2.3);
# GET issue with expand=changelog caps at about 100 (§2.5, unsure). Both configurable on the tool.
SEARCH_CHANGELOG_CAP = 40
ISSUE_CHANGELOG_CAP = 100
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def ts(moment: datetime | None, tz: ZoneInfo) -> str | None:
    """Jira's timestamp: ``2026-11-18T12:00:00.000-0800`` (ms, offset without a colon)."""
    if moment is None:
        return None
    local = moment.replace(tzinfo=UTC).astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + \
        local.strftime("%z")


def adf(text: str) -> dict[str, Any]:
    """A plain text as an Atlassian Document (API v3 bodies)."""
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        for line in text.split("\n") if line] or [{"type": "paragraph", "content": []}]}


class Renderer:
    """Renders state for one request: base URL, API version and the caller's time zone."""

    def __init__(self, site: Site, base: str, version: str, tz: str) -> None:
        self.site = site
        self.base = base
        self.version = version
        self.api = f"{base}/rest/api/{version}"
        self.tz = ZoneInfo(tz)

    def ts(self, moment: datetime | None) -> str | None:
        return ts(moment, self.tz)

    def text(self, value: Any) -> Any:
        """Description/comment body: strings in v2, ADF documents in v3."""
        if value is None:
            return None
        if self.version == "3":
            return value if isinstance(value, dict) else adf(str(value))
        return plain_text(value)

    def user(self, account_id: str | None) -> dict[str, Any] | None:
        user = self.site.user(account_id)
        if user is None:
            return None
        return {"self": f"{self.api}/user?accountId={user.account_id}",
                "accountId": user.account_id, "emailAddress": user.email,
                "avatarUrls": {"48x48": f"{self.base}/avatar/{user.account_id}.png"},
                "displayName": user.name, "active": True, "timeZone": user.time_zone,
                "accountType": "atlassian"}

    def category(self, key: str) -> dict[str, Any]:
        cat = CATEGORIES[key]
        return {"self": f"{self.api}/statuscategory/{cat['id']}", **cat}

    def status(self, status: Status) -> dict[str, Any]:
        return {"self": f"{self.api}/status/{status.id}", "description": "",
                "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
                "name": status.name, "id": status.id,
                "statusCategory": self.category(status.category)}

    def project(self, key: str, *, full: bool = False) -> dict[str, Any]:
        project = self.site.projects[key]
        body: dict[str, Any] = {"self": f"{self.api}/project/{project.id}", "id": project.id,
                                "key": project.key, "name": project.name,
                                "projectTypeKey": "software", "simplified": False,
                                "avatarUrls": {"48x48": f"{self.base}/avatar/{project.id}.png"}}
        if full:
            body.update({"description": "", "lead": self.user(project.lead),
                         "issueTypes": [self.issue_type(name) for name in ISSUE_TYPES.values()],
                         "assigneeType": "UNASSIGNED", "archived": False})
        return body

    def issue_type(self, name: str) -> dict[str, Any]:
        type_id = next(i for i, n in ISSUE_TYPES.items() if n == name)
        return {"self": f"{self.api}/issuetype/{type_id}", "id": type_id, "name": name,
                "description": "", "subtask": False, "hierarchyLevel": 0,
                "iconUrl": f"{self.base}/images/icons/issuetypes/{type_id}.png"}

    def priority(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        pid = next(i for i, n in PRIORITIES.items() if n == name)
        return {"self": f"{self.api}/priority/{pid}", "id": pid, "name": name,
                "iconUrl": f"{self.base}/images/icons/priorities/{name.lower()}.svg"}

    def resolution(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        rid = next(i for i, n in RESOLUTIONS.items() if n == name)
        return {"self": f"{self.api}/resolution/{rid}", "id": rid, "name": name,
                "description": ""}

    def comment(self, issue: Issue, comment: Comment) -> dict[str, Any]:
        return {"self": f"{self.api}/issue/{issue.id}/comment/{comment.id}",
                "id": str(comment.id), "author": self.user(comment.author),
                "body": self.text(comment.body), "updateAuthor": self.user(comment.author),
                "created": self.ts(comment.created), "updated": self.ts(comment.updated),
                "jsdPublic": True}

    def history(self, history: History) -> dict[str, Any]:
        return {"id": str(history.id), "author": self.user(history.author),
                "created": self.ts(history.created), "items": history.items}

    def remote_link(self, issue: Issue, link: RemoteLink) -> dict[str, Any]:
        body: dict[str, Any] = {"id": link.id,
                                "self": f"{self.api}/issue/{issue.key}/remotelink/{link.id}"}
        if link.global_id is not None:
            body["globalId"] = link.global_id
        if link.application is not None:
            body["application"] = link.application
        if link.relationship is not None:
            body["relationship"] = link.relationship
        body["object"] = link.object
        return body

    def fields(self, issue: Issue) -> dict[str, Any]:
        """Every field of the issue (``*all``)."""
        values: dict[str, Any] = {
            "summary": issue.summary,
            "description": self.text(issue.description),
            "issuetype": self.issue_type(issue.issue_type),
            "project": self.project(issue.project.key),
            "status": self.status(issue.status),
            "statuscategorychangedate": self.ts(issue.status_changed),
            "resolution": self.resolution(issue.resolution),
            "resolutiondate": self.ts(issue.resolution_date),
            "priority": self.priority(issue.priority),
            "labels": list(issue.labels),
            "assignee": self.user(issue.assignee),
            "reporter": self.user(issue.reporter),
            "creator": self.user(issue.reporter),
            "created": self.ts(issue.created),
            "updated": self.ts(issue.updated),
            "duedate": issue.duedate,
            "comment": {"comments": [self.comment(issue, c) for c in issue.comments],
                        "self": f"{self.api}/issue/{issue.id}/comment",
                        "maxResults": len(issue.comments), "total": len(issue.comments),
                        "startAt": 0},
        }
        for field_def in self.site.fields:
            if field_def.custom:
                values[field_def.id] = issue.custom.get(field_def.id)
        return values

    def issue(self, issue: Issue, wanted: set[str] | None, *, expand: set[str],
              changelog_cap: int, newest_first: bool,
              properties: list[str] | None = None) -> dict[str, Any]:
        """The issue JSON; ``wanted`` None means every field."""
        body: dict[str, Any] = {"expand": ISSUE_EXPAND, "id": str(issue.id),
                                "self": f"{self.api}/issue/{issue.id}", "key": issue.key}
        all_fields = self.fields(issue)
        if wanted is None:
            body["fields"] = all_fields
        elif wanted:
            body["fields"] = {k: v for k, v in all_fields.items() if k in wanted}
        if properties:
            body["properties"] = {k: issue.properties[k] for k in properties
                                  if k in issue.properties}
        if "changelog" in expand:
            histories = sorted(issue.histories, key=lambda h: (h.created, h.id),
                               reverse=newest_first)[:changelog_cap]
            body["changelog"] = {"startAt": 0, "maxResults": len(histories),
                                 "total": len(issue.histories),
                                 "histories": [self.history(h) for h in histories]}
        if "names" in expand:
            body["names"] = {f.id: f.name for f in self.site.fields
                             if wanted is None or f.id in wanted}
        return body
