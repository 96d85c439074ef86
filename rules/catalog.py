"""What rules can read: the entities of the normalized model, in the admins' words.

Each entity has Spanish field names (the Podio external_ids the admins already know, with
``_`` for ``-``) mapped to model columns, and relations to other entities that the engine
loads in bulk (one query per relation and rule, never one per entity).

Category options are those of the demo workspace (SPEC section 3); a deployment whose Podio
apps use other options edits ``OPTIONS`` below (validation warns about values outside them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from store.models import (
    Base,
    Client,
    Contact,
    Contract,
    Incident,
    Invoice,
    School,
    Staff,
    SurveyResponse,
    Ticket,
    UsageMetric,
)

# Field kinds as admins read them in messages.
TEXT, NUMBER, INTEGER, DATE, DATETIME, BOOL, OPTION = (
    "texto", "número", "entero", "fecha", "fecha y hora", "sí/no", "opción")

TICKET_STATUSES = ("Nuevo", "En atención", "Escalado", "Por validar", "Enviado a AM", "Cerrado")
MODULES = ("Inscripciones", "Reinscripciones", "Admisiones", "Calificaciones", "Cobranza",
           "Inicio de ciclo", "Cierre de ciclo", "Migraciones", "Otro")


@dataclass(frozen=True)
class Field:
    """A readable value of an entity."""

    name: str
    column: str
    kind: str
    options: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Relation:
    """A link to another entity: ``target.remote == self.local`` (latest one if several)."""

    name: str
    target: str
    local: str
    remote: str = "id"
    latest_by: str | None = None
    casefold: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Entity:
    """One kind of record rules can be about."""

    name: str
    plural: str
    model: type[Base]
    events: tuple[str, ...]
    fields: dict[str, Field]
    relations: dict[str, Relation]
    podio_app: str | None = None
    synced: bool = True
    extra_columns: tuple[str, ...] = field(default=())

    def member_names(self) -> list[str]:
        return [*self.fields, *self.relations]

    def columns(self) -> list[str]:
        """Model columns a record of this entity is built from."""
        cols = {"id", *(f.column for f in self.fields.values()),
                *(r.local for r in self.relations.values()), *self.extra_columns}
        if self.synced:
            cols |= {"source", "source_id", "deleted_at"}
        return sorted(cols)

    def field_for_column(self, column: str) -> str | None:
        """The admin's name of a model column (field, or the relation stored in it)."""
        for f in self.fields.values():
            if f.column == column:
                return f.name
        for r in self.relations.values():
            if r.local == column or column == r.local.removesuffix("_id") + "_source_id":
                return r.name
        return None


def _f(name: str, column: str, kind: str, options: tuple[str, ...] = (), doc: str = "") -> Field:
    return Field(name, column, kind, options, doc)


def _staff(name: str, column: str, doc: str = "") -> Relation:
    return Relation(name, "personal", column, doc=doc)


def _synced_ids(podio: bool) -> dict[str, Field]:
    ids = {"id": _f("id", "id", INTEGER, doc="id interno de saeko-sync"),
           "id_origen": _f("id_origen", "source_id", TEXT, doc="id en la herramienta de origen"),
           # When the record last changed in its tool (Podio last_edit_on, Jira updated, the
           # survey's submission): the moment of the change a rule reacts to, e.g. T2's
           # first-response time, independent of when the sync or the cycle ran.
           "ultima_edicion": _f("ultima_edicion", "source_updated_at", DATETIME,
                                doc="cuándo cambió por última vez en la herramienta de origen")}
    if podio:
        ids["id_podio"] = _f("id_podio", "source_id", TEXT, doc="id del item en Podio")
    return ids


def _fields(*items: Field) -> dict[str, Field]:
    return {f.name: f for f in items}


def _relations(*items: Relation) -> dict[str, Relation]:
    return {r.name: r for r in items}


ENTITIES: dict[str, Entity] = {}


def _add(entity: Entity) -> None:
    clash = set(entity.fields) & set(entity.relations)
    assert not clash, f"{entity.name}: {clash} is both a field and a relation"
    reserved = set(dir(dict))
    assert not (set(entity.member_names()) & reserved), f"{entity.name}: name clashes with dict"
    ENTITIES[entity.name] = entity


_add(Entity(
    "ticket", "tickets", Ticket, ("ticket",), podio_app="tickets",
    fields=_fields(
        *_synced_ids(True).values(),
        _f("titulo", "title", TEXT), _f("descripcion", "description", TEXT),
        _f("cliente_burbuja", "burbuja", BOOL), _f("producto", "product", TEXT),
        _f("modulo", "module", OPTION, MODULES),
        _f("canal", "channel", OPTION, ("WhatsApp", "Correo", "Teléfono", "Portal")),
        _f("prioridad", "priority", OPTION, ("Baja", "Media", "Alta", "Crítica")),
        _f("estatus", "status", OPTION, TICKET_STATUSES),
        _f("estatus_desde", "status_since", DATETIME,
           doc="desde cuándo tiene el ticket su estatus actual (hora de Podio)"),
        _f("jira", "jira_key", TEXT, doc="clave de la incidencia en Jira"),
        _f("respuesta", "answer", TEXT), _f("email_reportante", "reporter_email", TEXT),
        _f("fecha_apertura", "opened_at", DATETIME),
        _f("fecha_primera_respuesta", "first_response_at", DATETIME),
        _f("fecha_cierre", "closed_at", DATETIME),
        _f("tiempo_primera_respuesta", "first_response_hours", NUMBER),
        _f("tiempo_cierre", "close_hours", NUMBER),
        _f("tiempo_incidencia", "incident_hours", NUMBER),
        _f("calificacion", "rating", NUMBER)),
    relations=_relations(
        Relation("escuela", "escuela", "school_id"), Relation("cliente", "cliente", "client_id"),
        Relation("usuario", "usuario", "contact_id"),
        _staff("am", "am_id"), _staff("csm", "csm_id"), _staff("responsable", "responsible_id"),
        Relation("incidencia", "incidencia", "jira_key", "key",
                 doc="la incidencia de Jira cuya clave está en el ticket"),
        Relation("ultima_encuesta", "encuesta", "id", "ticket_id", latest_by="submitted_at",
                 doc="la respuesta de encuesta más reciente del ticket"),
        Relation("usuario_reportante", "usuario", "reporter_email", "email", casefold=True,
                 doc="el usuario cuyo email es el del reportante")),
))

_add(Entity(
    "cliente", "clientes", Client, ("client",), podio_app="clientes",
    fields=_fields(
        *_synced_ids(True).values(),
        _f("nombre", "name", TEXT), _f("segmento", "segment", OPTION, ("TOP", "Estándar")),
        _f("cliente_burbuja", "burbuja", BOOL), _f("producto", "product", TEXT),
        _f("estatus", "status", OPTION, ("Onboarding", "Activo", "En riesgo", "Baja")),
        _f("region", "region", OPTION, ("Tijuana", "Tecate", "Bajío")),
        _f("fecha_alta", "signed_on", DATE), _f("onboarding_finalizado", "onboarding_done_on", DATE),
        _f("decisor", "decision_maker", TEXT), _f("mrr", "mrr", NUMBER),
        _f("salud", "health_score", NUMBER), _f("banda_salud", "health_band", TEXT)),
    relations=_relations(_staff("am", "am_id"), _staff("csm", "csm_id")),
))

_add(Entity(
    "escuela", "escuelas", School, ("school",), podio_app="escuelas",
    fields=_fields(*_synced_ids(True).values(), _f("nombre", "name", TEXT),
                   _f("nivel", "level", TEXT), _f("ciudad", "city", TEXT)),
    relations=_relations(Relation("cliente", "cliente", "client_id")),
))

_add(Entity(
    "usuario", "usuarios", Contact, ("contact",), podio_app="usuarios",
    fields=_fields(*_synced_ids(True).values(), _f("nombre", "name", TEXT),
                   _f("email", "email", TEXT), _f("telefono", "phone", TEXT),
                   _f("rol", "role", OPTION, ("Directivo", "Operativo"))),
    relations=_relations(Relation("escuela", "escuela", "school_id")),
))

_add(Entity(
    "contrato", "contratos", Contract, ("contract",), podio_app="contratos",
    fields=_fields(*_synced_ids(True).values(),
                   _f("tipo", "kind", OPTION, ("Nuevo", "Renovación")),
                   _f("inicio", "starts_on", DATE), _f("fin", "ends_on", DATE),
                   _f("monto", "amount", NUMBER), _f("moneda", "currency", TEXT),
                   _f("estatus", "status", OPTION,
                      ("Vigente", "En renovación", "Renovado", "Cancelado"))),
    relations=_relations(Relation("cliente", "cliente", "client_id")),
))

_add(Entity(
    "factura", "facturas", Invoice, ("invoice",), podio_app="facturas",
    fields=_fields(*_synced_ids(True).values(), _f("folio", "folio", TEXT),
                   _f("monto", "amount", NUMBER), _f("moneda", "currency", TEXT),
                   _f("vencimiento", "due_on", DATE), _f("pagada", "paid_on", DATE),
                   _f("estatus", "status", TEXT)),
    relations=_relations(Relation("cliente", "cliente", "client_id")),
))

_add(Entity(
    "encuesta", "encuestas", SurveyResponse, ("survey", "survey_response"),
    fields=_fields(*_synced_ids(False).values(),
                   _f("tipo", "kind", OPTION, ("csat", "nps", "micro")),
                   _f("formulario", "form_id", TEXT), _f("fecha", "submitted_at", DATETIME),
                   _f("calificacion", "score", NUMBER), _f("comentario", "comment", TEXT),
                   _f("email", "email", TEXT)),
    relations=_relations(Relation("ticket", "ticket", "ticket_id"),
                         Relation("usuario", "usuario", "contact_id"),
                         Relation("cliente", "cliente", "client_id")),
))

_add(Entity(
    "incidencia", "incidencias", Incident, ("incident",),
    fields=_fields(*_synced_ids(False).values(), _f("clave", "key", TEXT),
                   _f("proyecto", "project", TEXT), _f("tipo", "issue_type", TEXT),
                   _f("resumen", "summary", TEXT), _f("estatus", "status", TEXT),
                   _f("categoria", "status_category", OPTION, ("new", "indeterminate", "done"),
                      doc="categoría del estatus en Jira: new, indeterminate o done"),
                   _f("resolucion", "resolution", TEXT), _f("prioridad", "priority", TEXT),
                   _f("asignado", "assignee", TEXT), _f("creada", "created_at", DATETIME),
                   _f("resuelta", "resolved_at", DATETIME)),
    relations=_relations(Relation("ticket", "ticket", "ticket_id")),
))

_add(Entity(
    "uso", "filas de uso", UsageMetric, ("usage", "usage_metric"),
    fields=_fields(*_synced_ids(False).values(), _f("semana", "week_start", DATE),
                   _f("usuarios_activos", "active_users", INTEGER),
                   _f("accesos", "logins", INTEGER), _f("funciones_clave", "key_features", INTEGER)),
    relations=_relations(Relation("cliente", "cliente", "client_id")),
))

_add(Entity(
    "personal", "personal", Staff, ("staff",), synced=False,
    fields=_fields(_f("id", "id", INTEGER), _f("clave", "key", TEXT), _f("nombre", "name", TEXT),
                   _f("email", "email", TEXT),
                   _f("rol", "role", OPTION, ("coo", "am", "csm", "agent", "lead")),
                   _f("region", "region", TEXT), _f("capacidad", "capacity", INTEGER),
                   _f("activo", "active", BOOL), _f("usuario_podio", "podio_user_id", INTEGER),
                   _f("perfil_podio", "podio_profile_id", INTEGER),
                   _f("cuenta_jira", "jira_account_id", TEXT)),
    relations={},
))


def entity_for_event(name: str) -> Entity | None:
    """The entity a ChangeEvent's ``entity`` column names (English, as the syncs write it)."""
    for entity in ENTITIES.values():
        if name in entity.events or name == entity.name:
            return entity
    return None
