"""The state of the emulated Jira site: issues with their changelog, comments, remote links
and properties, and the mutations people and API clients make to them.

Pure Python and thread-safe through the owner's lock (``JiraTool``); HTTP lives in api.py.
Every mutation returns what changed so the tool can deliver webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.jira.site import (
    DEFAULT_PRIORITY,
    DEFAULT_RESOLUTION,
    ISSUE_TYPES,
    PRIORITIES,
    RESOLUTIONS,
    SETTABLE_FIELDS,
    TICKET_FIELD_ID,
    Project,
    Site,
    Status,
)

# Jira limits (reference §2.6, §2.11): summary length, property size.
SUMMARY_MAX_CHARS = 255
PROPERTY_MAX_CHARS = 32768
FIRST_ISSUE_ID = 10001
FIRST_CHILD_ID = 10000  # histories, comments and remote links are numbered from here


class JiraInputError(Exception):
    """A request Jira rejects with 400 and an ErrorCollection."""

    def __init__(self, messages: list[str] | None = None,
                 errors: dict[str, str] | None = None, status: int = 400) -> None:
        super().__init__("; ".join((messages or []) + list((errors or {}).values())))
        self.messages = messages or []
        self.errors = errors or {}
        self.status = status


@dataclass
class History:
    id: int
    author: str | None
    created: datetime
    items: list[dict[str, Any]]


@dataclass
class Comment:
    id: int
    author: str | None
    body: Any  # a string (v2) or an ADF document (v3), as it was sent
    created: datetime
    updated: datetime


@dataclass
class RemoteLink:
    id: int
    global_id: str | None
    application: dict[str, Any] | None
    relationship: str | None
    object: dict[str, Any]


@dataclass
class Issue:
    id: int
    key: str
    project: Project
    issue_type: str
    summary: str
    description: Any
    priority: str | None
    status: Status
    resolution: str | None
    resolution_date: datetime | None
    labels: list[str]
    assignee: str | None
    reporter: str | None
    created: datetime
    updated: datetime
    status_changed: datetime
    custom: dict[str, Any] = field(default_factory=dict)
    duedate: str | None = None
    histories: list[History] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    remote_links: list[RemoteLink] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None  # a sub-task's parent issue id

    @property
    def number(self) -> int:
        return int(self.key.rsplit("-", 1)[1])


def status_item(old: Status, new: Status) -> dict[str, Any]:
    return {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": old.id,
            "fromString": old.name, "to": new.id, "toString": new.name}


def _resolution_id(name: str | None) -> str | None:
    return next((rid for rid, rname in RESOLUTIONS.items() if rname == name), None)


def resolution_item(old: str | None, new: str | None) -> dict[str, Any]:
    return {"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
            "from": _resolution_id(old), "fromString": old, "to": _resolution_id(new),
            "toString": new}


def plain_text(value: Any) -> str | None:
    """Text of a string or an ADF document (for changelog strings and v2 rendering)."""
    if value is None or isinstance(value, str):
        return value
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                parts.append(str(node.get("text", "")))
            for child in node.get("content", []) or []:
                walk(child)
            if node.get("type") == "paragraph":
                parts.append("\n")
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return "".join(parts).strip()


class JiraStore:
    """Issues of the site plus id counters. Callers hold the tool's lock."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.issues: dict[int, Issue] = {}
        self._by_key: dict[str, int] = {}
        self._next_issue_id = FIRST_ISSUE_ID
        self._next_child_id = FIRST_CHILD_ID
        self._counters: dict[str, int] = {}

    # --- lookups --------------------------------------------------------------------

    def get(self, ref: str) -> Issue | None:
        """An issue by id or key (keys match case-insensitively, as Jira does)."""
        if ref.isdigit():
            return self.issues.get(int(ref))
        issue_id = self._by_key.get(ref.upper())
        return self.issues.get(issue_id) if issue_id is not None else None

    def require(self, ref: str) -> Issue:
        issue = self.get(ref)
        if issue is None:
            raise JiraInputError(
                ["Issue does not exist or you do not have permission to see it."], status=404)
        return issue

    def subtasks(self, issue: Issue) -> list[Issue]:
        return [i for i in self.issues.values() if i.parent == issue.id]

    def delete(self, issue: Issue, delete_subtasks: bool) -> list[Issue]:
        """DELETE /issue/{key}[?deleteSubtasks=true]: the issue and, when asked, its
        sub-tasks; an issue with sub-tasks without ``deleteSubtasks=true`` is a 400. Jira
        platform REST v3 "Delete issue" (DELETE /rest/api/3/issue/{issueIdOrKey}, as the
        clients generated from Atlassian's OpenAPI document it, e.g. pub.dev atlassian_apis
        IssuesApi.deleteIssue): an issue with sub-tasks cannot be deleted unless
        deleteSubtasks is set, which deletes them with it. Returns what was deleted,
        sub-tasks first."""
        children = self.subtasks(issue)
        if children and not delete_subtasks:
            raise JiraInputError([f"The issue '{issue.key}' has subtasks. You must specify the "
                                  "'deleteSubtasks' parameter to delete this issue with all "
                                  "its subtasks."], status=400)
        gone = [*children, issue]
        for each in gone:
            self.issues.pop(each.id, None)
            self._by_key.pop(each.key, None)
        return gone

    def child_id(self) -> int:
        self._next_child_id += 1
        return self._next_child_id - 1

    # --- creation -------------------------------------------------------------------

    def add(self, issue: Issue) -> Issue:
        """Store a fully built issue (seeding); keeps key counters ahead of its number."""
        self.issues[issue.id] = issue
        self._by_key[issue.key] = issue.id
        self._next_issue_id = max(self._next_issue_id, issue.id + 1)
        project = issue.project.key
        self._counters[project] = max(self._counters.get(project, 0), issue.number)
        return issue

    def new_ids(self, project: Project) -> tuple[int, str]:
        issue_id = self._next_issue_id
        self._next_issue_id += 1
        self._counters[project.key] = self._counters.get(project.key, 0) + 1
        return issue_id, f"{project.key}-{self._counters[project.key]}"

    def create(self, fields: dict[str, Any], actor: str, now: datetime, *,
               api_version: str) -> Issue:
        """POST /issue: validate like Jira and create the issue in its initial status."""
        unknown = {name: f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                         "or unknown." for name in fields if name not in SETTABLE_FIELDS}
        if unknown:
            raise JiraInputError(errors=unknown)
        errors: dict[str, str] = {}
        project = self._project_ref(fields.get("project"))
        if project is None:
            errors["project"] = "Specify a valid project ID or key"
        issue_type = self._issue_type_ref(fields.get("issuetype"))
        if issue_type is None:
            errors["issuetype"] = "Specify an issue type"
        summary = fields.get("summary")
        summary_error = self._summary_error(summary)
        if summary_error:
            errors["summary"] = summary_error
        values, value_errors = self._settable_values(fields, api_version)
        errors.update(value_errors)
        if errors:
            raise JiraInputError(errors=errors)
        assert project is not None and issue_type is not None
        issue_id, key = self.new_ids(project)
        issue = Issue(
            id=issue_id, key=key, project=project, issue_type=issue_type, summary=str(summary),
            description=values.get("description"),
            priority=values.get("priority") or DEFAULT_PRIORITY, status=project.initial,
            resolution=None, resolution_date=None, labels=values.get("labels") or [],
            assignee=values.get("assignee"), reporter=values.get("reporter") or actor,
            created=now, updated=now, status_changed=now,
            custom={k: v for k, v in values.items() if k.startswith("customfield_")},
            duedate=values.get("duedate"))
        return self.add(issue)

    def _project_ref(self, ref: Any) -> Project | None:
        if not isinstance(ref, dict):
            return None
        value = ref.get("key") or ref.get("id")
        return self.site.project(str(value)) if value is not None else None

    @staticmethod
    def _issue_type_ref(ref: Any) -> str | None:
        if not isinstance(ref, dict):
            return None
        if "id" in ref:
            return ISSUE_TYPES.get(str(ref["id"]))
        name = str(ref.get("name", ""))
        return next((n for n in ISSUE_TYPES.values() if n.lower() == name.lower()), None)

    @staticmethod
    def _summary_error(summary: Any) -> str | None:
        if not isinstance(summary, str) or not summary.strip():
            return "You must specify a summary of the issue."
        if "\n" in summary or "\r" in summary:
            return "The summary is invalid because it contains newline characters."
        if len(summary) > SUMMARY_MAX_CHARS:
            return f"Summary must be less than {SUMMARY_MAX_CHARS} characters."
        return None

    def _settable_values(self, fields: dict[str, Any], api_version: str
                         ) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate the editable fields present; returns (stored values, errors)."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if name in ("project", "issuetype", "summary"):
                continue
            if name == "description":
                error = self._text_error(value, api_version)
                if error:
                    errors[name] = error
                values[name] = value
            elif name == "priority":
                priority = None
                if isinstance(value, dict):
                    priority = (PRIORITIES.get(str(value.get("id"))) if "id" in value else
                                next((p for p in PRIORITIES.values()
                                      if p.lower() == str(value.get("name", "")).lower()), None))
                if priority is None:
                    errors[name] = "Specify the Priority (id or name) in the string format"
                values[name] = priority
            elif name in ("assignee", "reporter"):
                account, error = self._user_ref(value)
                if error:
                    errors[name] = error
                values[name] = account
            elif name == "labels":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    errors[name] = "Labels must be a list of strings."
                    continue
                bad = next((v for v in value if " " in v or not v), None)
                if bad is not None:
                    errors[name] = f"The label '{bad}' contains spaces which is invalid."
                values[name] = list(dict.fromkeys(value))
            elif name == TICKET_FIELD_ID:
                if value is not None and not isinstance(value, str):
                    errors[name] = "Operation value must be a string"
                values[name] = value
            elif name == "customfield_10016":
                if value is not None and not isinstance(value, int | float):
                    errors[name] = "Operation value must be a number"
                values[name] = value
            elif name == "duedate":
                values[name] = value
        return values, errors

    @staticmethod
    def _text_error(value: Any, api_version: str) -> str | None:
        if value is None:
            return None
        if api_version == "3":
            if not (isinstance(value, dict) and value.get("type") == "doc"):
                return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
        elif not isinstance(value, str):
            return "Operation value must be a string"
        return None

    def _user_ref(self, value: Any) -> tuple[str | None, str | None]:
        if value is None:
            return None, None
        if isinstance(value, dict) and "name" in value and "accountId" not in value:
            # Jira Cloud dropped usernames (GDPR); only accountId identifies users.
            return None, "'name' is not supported on Jira Cloud; use 'accountId'"
        account = value.get("accountId") if isinstance(value, dict) else None
        if account is None:
            return None, None
        if self.site.user(account) is None:
            return None, f"User with accountId '{account}' does not exist"
        return str(account), None

    # --- edits ----------------------------------------------------------------------

    def edit(self, issue: Issue, fields: dict[str, Any], update: dict[str, Any], actor: str,
             now: datetime, *, api_version: str) -> History | None:
        """PUT /issue: apply field sets and label add/remove operations, with a changelog."""
        both = set(fields) & set(update)
        if both:
            name = sorted(both)[0]
            raise JiraInputError(errors={name: f"Field '{name}' cannot be set in both 'fields' "
                                               "and 'update'."})
        update = dict(update)
        comments = update.pop("comment", [])
        for name, operations in update.items():
            if name != "labels" and len(operations) == 1 and "set" in operations[0]:
                fields = {**fields, name: operations[0]["set"]}
        unknown = {name: f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                         "or unknown." for name in list(fields) + list(update)
                   if name not in SETTABLE_FIELDS or name in ("project", "issuetype")}
        if unknown:
            raise JiraInputError(errors=unknown)
        errors: dict[str, str] = {}
        if "summary" in fields:
            error = self._summary_error(fields["summary"])
            if error:
                errors["summary"] = error
        values, value_errors = self._settable_values(fields, api_version)
        errors.update(value_errors)
        if errors:
            raise JiraInputError(errors=errors)
        if "summary" in fields:
            values["summary"] = fields["summary"]
        labels = list(values.get("labels", issue.labels))
        for operation in update.get("labels", []):
            if "add" in operation and operation["add"] not in labels:
                labels.append(operation["add"])
            if "remove" in operation and operation["remove"] in labels:
                labels.remove(operation["remove"])
            if "set" in operation:
                labels = list(operation["set"])
        if "labels" in update or "labels" in values:
            values["labels"] = labels
        items = self._apply_values(issue, values)
        for operation in comments:
            body = (operation.get("add") or {}).get("body")
            if body:
                self.comment(issue, body, actor, now, api_version=api_version)
        if not items and not comments:
            return None
        issue.updated = now
        return self._history(issue, actor, now, items) if items else None

    def _apply_values(self, issue: Issue, values: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        simple = {"summary": "summary", "description": "description", "priority": "priority",
                  "assignee": "assignee", "reporter": "reporter", "duedate": "duedate"}
        for name, value in values.items():
            if name in simple:
                old = getattr(issue, simple[name])
                if old != value:
                    setattr(issue, simple[name], value)
                    items.append({"field": name, "fieldtype": "jira", "fieldId": name,
                                  "from": old if name in ("assignee", "reporter") else None,
                                  "fromString": plain_text(old),
                                  "to": value if name in ("assignee", "reporter") else None,
                                  "toString": plain_text(value)})
            elif name == "labels":
                if value != issue.labels:
                    items.append({"field": "labels", "fieldtype": "jira", "fieldId": "labels",
                                  "from": None, "fromString": " ".join(issue.labels),
                                  "to": None, "toString": " ".join(value)})
                    issue.labels = value
            elif name.startswith("customfield_"):
                old = issue.custom.get(name)
                if old != value:
                    issue.custom[name] = value
                    label = next((f.name for f in self.site.fields if f.id == name), name)
                    items.append({"field": label, "fieldtype": "custom", "fieldId": name,
                                  "from": None, "fromString": None if old is None else str(old),
                                  "to": None, "toString": None if value is None else str(value)})
        return items

    def _history(self, issue: Issue, actor: str | None, now: datetime,
                 items: list[dict[str, Any]]) -> History:
        history = History(self.child_id(), actor, now, items)
        issue.histories.append(history)
        return history

    def transition(self, issue: Issue, transition_id: str, fields: dict[str, Any],
                   actor: str | None, now: datetime) -> History:
        """POST /transitions: move the issue, setting or clearing its resolution."""
        available = {t.id: t for t in issue.project.available(issue.status)}
        chosen = available.get(str(transition_id))
        if chosen is None:
            raise JiraInputError([f"Transition id '{transition_id}' is not valid for this issue."])
        resolution = None
        if "resolution" in fields:
            if chosen.to.category != "done":
                raise JiraInputError(errors={"resolution": "Field 'resolution' cannot be set. It "
                                             "is not on the appropriate screen, or unknown."})
            ref = fields["resolution"] or {}
            resolution = (RESOLUTIONS.get(str(ref.get("id"))) if "id" in ref else
                          next((r for r in RESOLUTIONS.values()
                                if r.lower() == str(ref.get("name", "")).lower()), None))
            if resolution is None:
                raise JiraInputError(errors={"resolution": "Specify a valid resolution"})
        other = {k: v for k, v in fields.items() if k != "resolution"}
        if other:
            name = sorted(other)[0]
            raise JiraInputError(errors={name: f"Field '{name}' cannot be set. It is not on the "
                                               "appropriate screen, or unknown."})
        return self.move(issue, chosen.to, resolution, actor, now)

    def move(self, issue: Issue, target: Status, resolution: str | None, actor: str | None,
             now: datetime) -> History:
        """Change status (with its changelog); entering done sets a resolution, leaving clears it."""
        items = [status_item(issue.status, target)]
        new_resolution = issue.resolution
        if target.category == "done":
            new_resolution = resolution or issue.resolution or DEFAULT_RESOLUTION
        elif issue.status.category == "done":
            new_resolution = None
        if new_resolution != issue.resolution:
            items.append(resolution_item(issue.resolution, new_resolution))
            issue.resolution = new_resolution
            issue.resolution_date = now if new_resolution else None
        if target.category != issue.status.category:
            issue.status_changed = now
        issue.status = target
        issue.updated = now
        return self._history(issue, actor, now, items)

    # --- comments, links, properties ------------------------------------------------

    def comment(self, issue: Issue, body: Any, actor: str, now: datetime, *,
                api_version: str) -> Comment:
        if body is None or (isinstance(body, str) and not body.strip()):
            raise JiraInputError(errors={"comment": "Comment body can not be empty!"})
        error = self._text_error(body, api_version)
        if error:
            raise JiraInputError(errors={"comment": error})
        comment = Comment(self.child_id(), actor, body, now, now)
        issue.comments.append(comment)
        issue.updated = now
        return comment

    def remote_link(self, issue: Issue, body: dict[str, Any]) -> tuple[RemoteLink, bool]:
        """POST /remotelink: a matching globalId updates the link (returns created=False)."""
        obj = body.get("object")
        errors = {}
        if not isinstance(obj, dict) or not obj.get("url"):
            errors["url"] = "'url' is a required field."
        if not isinstance(obj, dict) or not obj.get("title"):
            errors["title"] = "'title' is a required field."
        if errors:
            raise JiraInputError(errors=errors)
        assert isinstance(obj, dict)
        global_id = body.get("globalId")
        existing = next((link for link in issue.remote_links
                         if global_id and link.global_id == global_id), None)
        if existing is not None:
            # Omitted fields become null on update (reference §2.10).
            existing.application = body.get("application")
            existing.relationship = body.get("relationship")
            existing.object = obj
            return existing, False
        link = RemoteLink(self.child_id(), global_id, body.get("application"),
                          body.get("relationship"), obj)
        issue.remote_links.append(link)
        return link, True

    @staticmethod
    def set_property(issue: Issue, key: str, value: Any, raw_size: int) -> bool:
        """PUT /properties/{key}; returns True when the property is new."""
        if not key or len(key) > 255:
            raise JiraInputError(["The property key cannot be longer than 255 characters."])
        if raw_size > PROPERTY_MAX_CHARS:
            raise JiraInputError([f"The property value cannot be longer than "
                                  f"{PROPERTY_MAX_CHARS} characters."])
        if value is None or value == "":
            raise JiraInputError(["The property value must be a valid, non-empty JSON."])
        created = key not in issue.properties
        issue.properties[key] = value
        return created
