"""The static configuration of the emulated Jira Cloud site: users, projects, workflows,
statuses, issue types, priorities, resolutions and fields.

Names are Spanish, as on Saeko's site. Ids follow Jira Cloud's numbering habits (statuses,
issue types and custom fields from 10000 up; status categories 2/4/3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.world import JIRA_PROJECT_NAMES, JIRA_WORKFLOWS, StaffMember

# Demo credentials (docs/sandbox.md); the connector reads them from JIRA_EMAIL/JIRA_API_TOKEN.
DEMO_EMAIL = "integracion@saeko.test"
DEMO_API_TOKEN = "demo-jira-token"
DEMO_WEBHOOK_SECRET = "demo-jira-webhook-secret"
INTEGRATION_ACCOUNT_ID = "712020:5aeb0c1d-7f3e-4c2a-9b1d-000000000001"
INTEGRATION_NAME = "Integración saeko-sync"
# The API user's profile time zone: JQL date literals are read in it (reference §4).
DEFAULT_USER_TIME_ZONE = "America/Mexico_City"

# The Podio ticket id lives in this text custom field (reference §2.2: ids differ per site,
# clients must resolve it by name).
TICKET_FIELD_ID = "customfield_10050"
TICKET_FIELD_NAME = "Ticket Podio"
# Jira's default priorities; Saeko's ticket priorities map onto them when issues are seeded.
PRIORITIES = {"1": "Highest", "2": "High", "3": "Medium", "4": "Low", "5": "Lowest"}
DEFAULT_PRIORITY = "Medium"
TICKET_PRIORITY_TO_JIRA = {"Crítica": "Highest", "Alta": "High", "Media": "Medium",
                           "Baja": "Low"}
RESOLUTIONS = {"10000": "Listo", "10001": "No se hará", "10002": "Duplicado",
               "10003": "No se puede reproducir", "10004": "Corregido",
               "10005": "Configuración ajustada"}
# Set when an issue enters a done status and the transition does not name one (what the
# simplified workflows of Jira Cloud do with "Done").
DEFAULT_RESOLUTION = "Listo"
ISSUE_TYPES = {"10001": "Tarea", "10002": "Error", "10003": "Mejora"}
# Status categories as Jira Cloud numbers them (reference §3), with the Spanish UI names.
CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "Por hacer"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "En curso"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Listo"},
}
# (transition id, name, from statuses or None for "from any other status", to status)
TransitionSpec = tuple[str, str, tuple[str, ...] | None, str]
TRANSITIONS: dict[str, list[TransitionSpec]] = {
    "SOP": [("11", "Atender", ("Abierto",), "En progreso"),
            ("21", "Resolver", ("Abierto", "En progreso"), "Resuelto"),
            ("31", "Reabrir", ("Resuelto",), "Abierto")],
    "DEV": [("11", "Iniciar desarrollo", ("Por hacer",), "En desarrollo"),
            ("21", "Enviar a pruebas", ("En desarrollo",), "En pruebas"),
            ("31", "Aprobar", ("En pruebas",), "Listo"),
            ("41", "Rechazar", ("En pruebas",), "En desarrollo"),
            ("51", "Descartar", ("Por hacer", "En desarrollo"), "Listo"),
            ("61", "Reabrir", ("Listo",), "Por hacer")],
    "PROD": [("11", "Analizar", ("Backlog",), "En análisis"),
             ("21", "Cerrar", ("Backlog", "En análisis"), "Cerrado"),
             ("31", "Reabrir", ("Cerrado",), "Backlog")],
}


@dataclass(frozen=True)
class User:
    account_id: str
    name: str
    email: str
    time_zone: str


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str  # new | indeterminate | done


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    sources: tuple[str, ...] | None
    to: Status


@dataclass
class Project:
    id: str
    key: str
    name: str
    statuses: list[Status]
    transitions: list[Transition]
    lead: str

    @property
    def initial(self) -> Status:
        return self.statuses[0]

    def status_named(self, name: str) -> Status | None:
        return next((s for s in self.statuses if s.name.lower() == name.lower()), None)

    def available(self, current: Status) -> list[Transition]:
        """Transitions offered from ``current`` (what GET .../transitions lists)."""
        return [t for t in self.transitions if t.to.id != current.id
                and (t.sources is None or current.name in t.sources)]


@dataclass(frozen=True)
class FieldDef:
    id: str
    name: str
    custom: bool
    schema: dict[str, object]
    clause_names: tuple[str, ...]


SYSTEM_FIELDS = [
    FieldDef("issuekey", "Clave", False, {}, ("id", "issue", "issuekey", "key")),
    FieldDef("summary", "Resumen", False, {"type": "string", "system": "summary"}, ("summary",)),
    FieldDef("description", "Descripción", False,
             {"type": "string", "system": "description"}, ("description",)),
    FieldDef("issuetype", "Tipo de incidencia", False,
             {"type": "issuetype", "system": "issuetype"}, ("issuetype", "type")),
    FieldDef("project", "Proyecto", False, {"type": "project", "system": "project"},
             ("project",)),
    FieldDef("status", "Estado", False, {"type": "status", "system": "status"}, ("status",)),
    FieldDef("priority", "Prioridad", False, {"type": "priority", "system": "priority"},
             ("priority",)),
    FieldDef("resolution", "Resolución", False,
             {"type": "resolution", "system": "resolution"}, ("resolution",)),
    FieldDef("resolutiondate", "Resuelta", False,
             {"type": "datetime", "system": "resolutiondate"}, ("resolutiondate", "resolved")),
    FieldDef("assignee", "Persona asignada", False, {"type": "user", "system": "assignee"},
             ("assignee",)),
    FieldDef("reporter", "Informador", False, {"type": "user", "system": "reporter"},
             ("reporter",)),
    FieldDef("created", "Creada", False, {"type": "datetime", "system": "created"},
             ("created", "createdDate")),
    FieldDef("updated", "Actualizada", False, {"type": "datetime", "system": "updated"},
             ("updated", "updatedDate")),
    FieldDef("labels", "Etiquetas", False,
             {"type": "array", "items": "string", "system": "labels"}, ("labels",)),
    FieldDef("statuscategorychangedate", "Fecha de cambio de categoría de estado", False,
             {"type": "datetime", "system": "statuscategorychangedate"},
             ("statusCategoryChangedDate",)),
    FieldDef("duedate", "Fecha de vencimiento", False, {"type": "date", "system": "duedate"},
             ("due", "duedate")),
    FieldDef("comment", "Comentario", False,
             {"type": "comments-page", "system": "comment"}, ("comment",)),
]
CUSTOM_FIELDS = [
    FieldDef(TICKET_FIELD_ID, TICKET_FIELD_NAME, True,
             {"type": "string",
              "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
              "customId": 10050},
             ("cf[10050]", TICKET_FIELD_NAME, f"{TICKET_FIELD_NAME}[Short text]")),
    FieldDef("customfield_10016", "Story point estimate", True,
             {"type": "number", "custom": "com.pyxis.greenhopper.jira:jsw-story-points",
              "customId": 10016},
             ("cf[10016]", "Story point estimate", "Story point estimate[Number]")),
]
# Fields the create and edit screens accept.
SETTABLE_FIELDS = {"summary", "description", "issuetype", "project", "priority", "assignee",
                   "reporter", "labels", "duedate", TICKET_FIELD_ID, "customfield_10016"}


@dataclass
class Site:
    """Everything static about the site; built once per sandbox from the world's staff."""

    users: dict[str, User] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    statuses: dict[str, Status] = field(default_factory=dict)
    fields: list[FieldDef] = field(default_factory=list)
    integration: User | None = None

    def project(self, ref: str) -> Project | None:
        """A project by key (any case), id or name."""
        for project in self.projects.values():
            if ref.upper() == project.key or ref == project.id or ref.lower() == project.name.lower():
                return project
        return None

    def user(self, ref: str | None) -> User | None:
        return self.users.get(ref) if ref else None

    def status_by_name(self, name: str) -> list[Status]:
        return [s for s in self.statuses.values() if s.name.lower() == name.lower()]


def build_site(staff: list[StaffMember], time_zone: str = DEFAULT_USER_TIME_ZONE) -> Site:
    """The site of the demo world: the integration user, staff accounts, three projects."""
    site = Site(fields=SYSTEM_FIELDS + CUSTOM_FIELDS)
    site.integration = User(INTEGRATION_ACCOUNT_ID, INTEGRATION_NAME, DEMO_EMAIL, time_zone)
    site.users[INTEGRATION_ACCOUNT_ID] = site.integration
    for member in staff:
        site.users[member.jira_account_id] = User(member.jira_account_id, member.name,
                                                  member.email, "America/Tijuana")
    lead = next((m.jira_account_id for m in staff if m.role == "coo"), INTEGRATION_ACCOUNT_ID)
    next_status = 10000
    for index, (key, flow) in enumerate(JIRA_WORKFLOWS.items()):
        statuses = []
        for position, name in enumerate(flow):
            category = ("new" if position == 0 else "done" if position == len(flow) - 1
                        else "indeterminate")
            status = Status(str(next_status), name, category)
            next_status += 1
            statuses.append(status)
            site.statuses[status.id] = status
        by_name = {s.name: s for s in statuses}
        transitions = [Transition(tid, name, sources, by_name[to])
                       for tid, name, sources, to in TRANSITIONS[key]]
        site.projects[key] = Project(str(10000 + index), key, JIRA_PROJECT_NAMES[key], statuses,
                                     transitions, lead)
    return site
