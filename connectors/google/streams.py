"""Google streams as declarations (read from config/google.yaml) and the pageToken paginator.

- One stream per configured form: primary key ``responseId``; cursor ``lastSubmittedTime``
  (RFC 3339, microseconds); the API filters ``timestamp > T`` and pages with ``pageToken``;
  merge on (source 'forms', responseId).
- The usage sheet: one full read of the tab per cycle (one API call); primary key
  client + week; only changed rows are written; rows gone from the sheet are marked deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from core.errors import RemoteDataError
from core.settings import Settings
from core.yamlconf import load_yaml_model

FormField = Literal["score", "comment", "ticket", "email", "client"]
UsageField = Literal["client", "week_start", "active_users", "logins", "key_features"]
REQUIRED_USAGE_FIELDS = ("client", "week_start")
FORMS_SOURCE, SHEETS_SOURCE = "forms", "sheets"
USAGE_STREAM = "usage"
MAX_PAGES = 1000  # 1,000 pages x 5,000 responses: far beyond any form saeko-sync reads


def _setting_name(value: str) -> str:
    name = value.strip().lower()
    if name not in Settings.model_fields:
        raise ValueError(f"{value!r} is not a setting; use e.g. GOOGLE_CSAT_FORM_ID")
    return name


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int
    max: int


class FormMap(BaseModel):
    """How one form's answers map to survey responses."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["csat", "nps", "micro"]
    form_id_setting: str
    scale: Scale
    questions: dict[str, FormField]

    _setting = field_validator("form_id_setting")(_setting_name)

    @model_validator(mode="after")
    def _one_score(self) -> FormMap:
        fields = list(self.questions.values())
        for name in set(fields):
            if fields.count(name) > 1:
                raise ValueError(f"two questions map to {name!r}")
        if "score" not in fields:
            raise ValueError("no question maps to 'score'")
        return self

    def question_of(self, field: str) -> str | None:
        return next((qid for qid, name in self.questions.items() if name == field), None)


class UsageMap(BaseModel):
    """How the usage sheet's columns map to usage metrics."""

    model_config = ConfigDict(extra="forbid")
    spreadsheet_id_setting: str
    tab: str
    columns: dict[str, UsageField]

    _setting = field_validator("spreadsheet_id_setting")(_setting_name)

    @model_validator(mode="after")
    def _required(self) -> UsageMap:
        missing = [f for f in REQUIRED_USAGE_FIELDS if f not in self.columns.values()]
        if missing:
            raise ValueError(f"no column maps to {', '.join(missing)}")
        return self


class GoogleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    forms: dict[str, FormMap]
    usage_sheet: UsageMap


def load_config(config_dir: Path) -> GoogleConfig:
    """config/google.yaml, validated (ConfigError with file:line otherwise)."""
    return load_yaml_model(config_dir / "google.yaml", GoogleConfig)


@dataclass(frozen=True)
class FormStream:
    """One form synced into survey_responses."""

    name: str
    form_id: str
    mapping: FormMap
    primary_key = "responseId"
    cursor_field = "lastSubmittedTime"


class PageTokenPaginator:
    """Google's pageToken paging; refuses a token it has already seen (no endless loops)."""

    def __init__(self, max_pages: int = MAX_PAGES) -> None:
        self.max_pages = max_pages

    def pages(self, fetch: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        token: str | None = None
        for _ in range(self.max_pages):
            page = fetch(token)
            yield page
            token = page.get("nextPageToken")
            if not token:
                return
            if token in seen:
                raise RemoteDataError(f"Google repeated the page token {token[:20]}…; stopped "
                                      "paging to avoid a loop.")
            seen.add(token)
        raise RemoteDataError(f"more than {self.max_pages} pages; stopped paging.")
