"""The apps of the "Postventa" workspace (SPEC §3): fields, options and their JSON shapes.

Field ids are ``app_id * 100 + position`` and category option ids are ``1..n`` per field
(both stable). Labels are Spanish; external_ids are what the connector maps by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.world import (
    CHANNELS,
    LEVELS,
    MODULES,
    PODIO_APP_IDS,
    PODIO_SPACE_ID,
    PRIORITIES,
    PRODUCTS,
    TICKET_STATUSES,
)

ORG_URL = "https://podio.com/saeko"
SPACE_URL = f"{ORG_URL}/postventa"
APP_REVISION = 1
CURRENCIES = ("MXN", "USD")
_COLORS = ("DCEBD8", "F7D1D0", "D2E4EB", "FFF5C2", "E1D8ED", "F7E5CF", "E9E9E9")
# The phone field is "tel" in app definitions; clients model its item values as "phone"
# (reference §4.2). Which string items carry is unverified, so it is one constant here.
PHONE_APP_TYPE = "tel"
PHONE_ITEM_TYPE = "phone"
EMAIL_TYPES = ("home", "work", "other")
PHONE_TYPES = ("mobile", "work", "home", "main", "work_fax", "private_fax", "other")


@dataclass(frozen=True)
class Option:
    id: int
    text: str
    color: str
    status: str = "active"

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "status": self.status, "color": self.color}


@dataclass
class FieldDef:
    """One app field. ``pos`` is its index in the item's value tuple (= config.delta)."""

    external_id: str
    type: str
    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    refs: tuple[str, ...] = ()  # app names an app-reference field points at
    field_id: int = 0
    pos: int = 0

    @property
    def multiple(self) -> bool:
        return bool(self.settings.get("multiple"))

    @property
    def item_type(self) -> str:
        return PHONE_ITEM_TYPE if self.type == PHONE_APP_TYPE else self.type

    def option(self, option_id: int) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def option_id(self, text: str) -> int:
        """Option id of a text (seeding and tests); KeyError names the valid texts."""
        for opt in self.options:
            if opt.text == text:
                return opt.id
        raise KeyError(f"{self.external_id}: no option {text!r}; "
                       f"options are {[o.text for o in self.options]}")

    def config(self, app_ids: dict[str, int]) -> dict[str, Any]:
        settings = dict(self.settings)
        if self.type == "category":
            settings["options"] = [o.json() for o in self.options]
        if self.type == "app":
            settings["referenced_apps"] = [{"app_id": app_ids[a], "view_id": None}
                                           for a in self.refs]
        return {"label": self.label, "description": "", "delta": self.pos,
                "required": False, "hidden": False, "unique": False, "settings": settings}

    def json(self, app_ids: dict[str, int]) -> dict[str, Any]:
        """The field as in GET /app/{id} (§4.2)."""
        return {"field_id": self.field_id, "external_id": self.external_id, "type": self.type,
                "label": self.label, "status": "active", "config": self.config(app_ids)}


@dataclass
class AppDef:
    """One Podio app of the workspace."""

    name: str  # world key, e.g. "tickets"
    label: str
    item_name: str
    icon: str
    fields: list[FieldDef]
    app_id: int = 0
    by_key: dict[str, FieldDef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.app_id = PODIO_APP_IDS[self.name]
        for pos, fdef in enumerate(self.fields):
            fdef.pos = pos
            fdef.field_id = self.app_id * 100 + pos + 1
            self.by_key[fdef.external_id] = fdef
            self.by_key[str(fdef.field_id)] = fdef

    def field(self, key: str | int) -> FieldDef | None:
        """A field by external_id or field_id (as int or string)."""
        return self.by_key.get(str(key))

    @property
    def title_field(self) -> FieldDef:
        return self.fields[0]

    @property
    def url_label(self) -> str:
        return self.name

    @property
    def link(self) -> str:
        return f"{SPACE_URL}/apps/{self.url_label}"

    def mini(self) -> dict[str, Any]:
        """The app as embedded in items and references."""
        return {"app_id": self.app_id, "name": self.label, "item_name": self.item_name,
                "icon": self.icon, "space_id": PODIO_SPACE_ID, "status": "active",
                "url_label": self.url_label, "link": self.link}

    def json(self, app_ids: dict[str, int]) -> dict[str, Any]:
        """GET /app/{app_id} (§4.2)."""
        return {
            "app_id": self.app_id, "status": "active", "space_id": PODIO_SPACE_ID,
            "url_label": self.url_label, "link": self.link, "current_revision": APP_REVISION,
            "rights": ["view", "update", "add_item", "add_hook", "add_task", "add_comment"],
            "config": {"name": self.label, "item_name": self.item_name, "type": "standard",
                       "icon": self.icon, "allow_edit": True, "external_id": None,
                       "description": ""},
            "fields": [f.json(app_ids) for f in self.fields],
        }


def _opts(texts: list[str] | tuple[str, ...]) -> tuple[Option, ...]:
    return tuple(Option(i + 1, t, _COLORS[i % len(_COLORS)]) for i, t in enumerate(texts))


def text(ext: str, label: str, fmt: str = "plain") -> FieldDef:
    """A text field: ``plain`` (one line), ``plain_long`` (several lines) or ``html``."""
    return FieldDef(ext, "text", label, {"format": "plain" if fmt == "plain_long" else fmt,
                                         "size": "small" if fmt == "plain" else "large"})


def category(ext: str, label: str, texts: list[str] | tuple[str, ...],
             multiple: bool = False) -> FieldDef:
    return FieldDef(ext, "category", label, {"multiple": multiple, "display": "inline"},
                    options=_opts(texts))


def contact(ext: str, label: str) -> FieldDef:
    return FieldDef(ext, "contact", label, {"type": "space_users", "valid_types": ["user"]})


def app_ref(ext: str, label: str, target: str) -> FieldDef:
    return FieldDef(ext, "app", label, {"multiple": False}, refs=(target,))


def date(ext: str, label: str) -> FieldDef:
    # Every world date field allows an optional time and an optional end; whether a value
    # is all-day or timed is decided by the value written (§6.1).
    return FieldDef(ext, "date", label, {"calendar": True, "end": "enabled", "time": "enabled",
                                         "color": "DCEBD8"})


def number(ext: str, label: str, decimals: int = 2) -> FieldDef:
    return FieldDef(ext, "number", label, {"decimals": decimals})


def money(ext: str, label: str) -> FieldDef:
    return FieldDef(ext, "money", label, {"allowed_currencies": list(CURRENCIES)})


def build_apps() -> dict[str, AppDef]:
    """The apps, keyed by world name (clientes, escuelas, ...)."""
    statuses = ["Onboarding", "Activo", "En riesgo", "Baja"]
    apps = [
        AppDef("clientes", "Clientes", "Cliente", "9.png", [
            text("nombre", "Nombre"), category("segmento", "Segmento", ["TOP", "Estándar"]),
            category("cliente-burbuja", "Cliente burbuja", ["Sí", "No"]),
            contact("am", "AM"), contact("csm", "CSM"),
            category("producto", "Producto", PRODUCTS), category("estatus", "Estatus", statuses),
            category("region", "Región", ["Tijuana", "Tecate", "Bajío"]),
            date("fecha-alta", "Fecha de alta"),
            date("onboarding-finalizado", "Onboarding finalizado"),
            text("decisor", "Decisor"), money("mrr", "MRR"), number("salud", "Salud", 0),
            category("banda-salud", "Banda de salud", ["Sana", "Atención", "En riesgo", "Crítica"]),
            text("motivos-salud", "Motivos de salud", "plain_long"),
            date("decisor-desde", "Decisor desde"),
        ]),
        AppDef("escuelas", "Escuelas", "Escuela", "37.png", [
            text("nombre", "Nombre"), app_ref("cliente", "Cliente", "clientes"),
            category("nivel", "Nivel", LEVELS), text("ciudad", "Ciudad"),
        ]),
        AppDef("usuarios", "Usuarios", "Usuario", "12.png", [
            text("nombre", "Nombre"), FieldDef("email", "email", "Email", {"multiple": True}),
            FieldDef("telefono", PHONE_APP_TYPE, "Teléfono", {"multiple": True}),
            app_ref("escuela", "Escuela", "escuelas"),
            category("rol", "Rol", ["Directivo", "Operativo"]),
            category("no-encuestar", "No encuestar", ["Sí", "No"]),
        ]),
        AppDef("tickets", "Tickets", "Ticket", "55.png", [
            text("titulo", "Título"), text("descripcion", "Descripción", "html"),
            text("email-reportante", "Email del reportante"),
            app_ref("escuela", "Escuela", "escuelas"),
            category("cliente-burbuja", "Cliente burbuja", ["Sí", "No"]),
            contact("csm", "CSM"), contact("am", "AM"),
            category("producto", "Producto", PRODUCTS), app_ref("usuario", "Usuario", "usuarios"),
            category("modulo", "Módulo", MODULES),
            category("canal", "Canal", [c for c, _ in CHANNELS]),
            category("prioridad", "Prioridad", [p for p, _ in PRIORITIES]),
            category("estatus", "Estatus", TICKET_STATUSES),
            contact("responsable", "Responsable"), text("jira", "Jira"),
            text("respuesta", "Respuesta"), date("fecha-apertura", "Fecha de apertura"),
            date("fecha-primera-respuesta", "Fecha de primera respuesta"),
            date("fecha-cierre", "Fecha de cierre"),
            number("tiempo-primera-respuesta", "Tiempo a primera respuesta (horas hábiles)"),
            number("tiempo-cierre", "Tiempo de cierre (horas hábiles)"),
            number("tiempo-incidencia", "Tiempo de incidencia (horas hábiles)"),
            number("calificacion", "Calificación", 0),
        ]),
        AppDef("contratos", "Contratos", "Contrato", "80.png", [
            text("titulo", "Título"), app_ref("cliente", "Cliente", "clientes"),
            category("tipo", "Tipo", ["Nuevo", "Renovación"]),
            date("inicio", "Inicio"), date("fin", "Fin"), money("monto", "Monto"),
            category("estatus", "Estatus", ["Vigente", "En renovación", "Renovado", "Cancelado"]),
            FieldDef("dias-restantes", "calculation", "Días restantes",
                     {"return_type": "number", "decimals": 0, "unit": "días",
                      "script": "days from today to @Fin"}),
        ]),
        AppDef("facturas", "Facturas", "Factura", "106.png", [
            text("folio", "Folio"), app_ref("cliente", "Cliente", "clientes"),
            money("monto", "Monto"), date("vencimiento", "Vencimiento"),
            date("pagada", "Pagada"),
            category("estatus", "Estatus", ["Pagada", "Pendiente", "Vencida"]),
        ]),
        # The AMs' account follow-ups (M1, M8); created by staff at run time, none seeded.
        AppDef("seguimientos", "Seguimientos", "Seguimiento", "41.png", [
            text("titulo", "Título"), app_ref("cliente", "Cliente", "clientes"),
            date("fecha", "Fecha"),
            category("tipo", "Tipo", ["Check-in", "Revisión trimestral",
                                      "Llamada de recuperación", "Capacitación"]),
            contact("am", "AM"), text("notas", "Notas"),
            category("resultado", "Resultado", ["Realizado", "Reprogramado", "Cancelado"]),
        ]),
    ]
    return {a.name: a for a in apps}
