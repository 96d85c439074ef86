"""What rules can read: the entities of the normalized model, in the admins' words.

Each entity has Spanish field names mapped to model columns, and relations to other entities
that the engine loads in bulk (one query per relation and rule, never one per entity).

The Podio-fed entities (ticket, cliente, escuela, ...) are derived from their declaration in
``config/podio.yaml`` (``store.entities``): a field's name is its Podio external_id with
``_`` for ``-``, its kind follows its type, a category field's ``options`` are those rules may
compare with (validation warns about values outside them), references and staff fields are
relations. Only what is not a Podio field is written here: the entities fed by Jira, Google
and staff.yaml, and computed fields and relations (``EXTRA_FIELDS``, ``EXTRA_RELATIONS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from core.errors import ConfigError
from core.settings import PROJECT_ROOT
from store.entities import AppMap, PodioMapping, load_mapping
from store.models import Base, Incident, Staff, SurveyResponse, UsageMetric

# Field kinds as admins read them in messages.
TEXT, NUMBER, INTEGER, DATE, DATETIME, BOOL, OPTION = (
    "texto", "número", "entero", "fecha", "fecha y hora", "sí/no", "opción")


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
    # The tool its records come from (connectors.registry), for what `doctor` checks the
    # active rules need; None for records of no tool (the staff file).
    tool: str | None = None
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
    """Register an entity; a clash is a ConfigError (Podio's come from config/podio.yaml)."""
    problems = []
    if entity.name in ENTITIES:
        problems.append(f'la entidad "{entity.name}" ya existe')
    if clash := set(entity.fields) & set(entity.relations):
        problems.append(f"{', '.join(sorted(clash))}: campo y relación a la vez")
    if reserved := set(entity.member_names()) & set(dir(dict)):
        problems.append(f"{', '.join(sorted(reserved))}: nombre reservado")
    if problems:
        where = f"config/podio.yaml, app {entity.podio_app}" if entity.podio_app \
            else "rules/catalog.py"
        raise ConfigError(f"{where}: " + "; ".join(problems))
    ENTITIES[entity.name] = entity


# What Podio entities have beyond their app's fields (config/podio.yaml): fields the sync
# computes, inserted after the named field, and relations found by other keys.
EXTRA_FIELDS: dict[str, tuple[tuple[str, Field], ...]] = {
    "ticket": (("estatus", _f("estatus_desde", "status_since", DATETIME,
                             doc="desde cuándo tiene el ticket su estatus actual (hora de Podio)")),),
}
EXTRA_RELATIONS: dict[str, tuple[Relation, ...]] = {
    "ticket": (
        Relation("incidencia", "incidencia", "jira_key", "key",
                 doc="la incidencia de Jira cuya clave está en el ticket"),
        Relation("ultima_encuesta", "encuesta", "id", "ticket_id", latest_by="submitted_at",
                 doc="la respuesta de encuesta más reciente del ticket"),
        Relation("usuario_reportante", "usuario", "reporter_email", "email", casefold=True,
                 doc="el usuario cuyo email es el del reportante")),
}
# Podio field types as admins read them; a category field with options is an OPTION.
PODIO_KINDS = {"text": TEXT, "html": TEXT, "email": TEXT, "phone": TEXT, "category": TEXT,
               "yes_no": BOOL, "date": DATE, "datetime": DATETIME, "number": NUMBER,
               "decimal": NUMBER, "money": NUMBER}


def _podio_fields(entity: str, app: AppMap) -> dict[str, Field]:
    """The app's fields in order; a money field's currency when its table keeps one."""
    out = list(_synced_ids(True).values())
    extra = dict(EXTRA_FIELDS.get(entity, ()))
    for column, spec in app.fields.items():
        if spec.type in ("ref", "staff"):
            continue
        out.append(_f(spec.rule_name, column, OPTION if spec.options else PODIO_KINDS[spec.type],
                      tuple(spec.options or ()), spec.doc))
        if spec.type == "money" and "currency" in app.model.__table__.columns:
            out.append(_f("moneda", "currency", TEXT))
        if spec.rule_name in extra:
            out.append(extra[spec.rule_name])
    return _fields(*out)


def _podio_relations(entity: str, app: AppMap, mapping: PodioMapping) -> dict[str, Relation]:
    """References (to the entity of the referenced table) and staff fields, each followed
    by the derived columns read through it, then the entity's extra relations."""
    entity_of = {a.table: a.entity for a in mapping.apps.values()}
    out: list[Relation] = []
    for column, spec in app.fields.items():
        if spec.type == "staff":
            out.append(_staff(spec.rule_name, column))
        elif spec.type == "ref" and spec.table and spec.fk:
            if spec.table not in entity_of:
                raise ConfigError(f"config/podio.yaml, app {app.entity}: el campo {spec.field} "
                                  f"apunta a la tabla {spec.table}, que no es de ninguna app")
            out.append(Relation(spec.rule_name, entity_of[spec.table], spec.fk))
            for derived_column, derived in app.derived.items():
                if derived.from_ == spec.fk:
                    out.append(_derived_relation(derived_column, derived.table, derived.column,
                                                 mapping, entity_of))
    return _relations(*out, *EXTRA_RELATIONS.get(entity, ()))


def _derived_relation(column: str, table: str, source_column: str, mapping: PodioMapping,
                      entity_of: dict[str, str]) -> Relation:
    """The relation a derived column stands for: the reference of ``table`` it copies."""
    found = mapping.app_of_table(table)
    ref = next((f for f in found[1].fields.values() if f.fk == source_column), None) \
        if found else None
    if ref is None or ref.table is None:
        raise ConfigError(f"config/podio.yaml: la columna derivada {column} copia "
                          f"{table}.{source_column}, que no es una referencia de una app")
    return Relation(ref.rule_name, entity_of[ref.table], column)


def _add_podio_entities(mapping: PodioMapping) -> None:
    """One entity per app of config/podio.yaml, in sync order."""
    for name, app in mapping.apps.items():
        _add(Entity(app.entity, name, app.model, (app.entity,), podio_app=name, tool="podio",
                    fields=_podio_fields(app.entity, app),
                    relations=_podio_relations(app.entity, app, mapping)))


# The mapping the Podio entities were built from: the shipped one until RulesConfig loads
# a deployment's CONFIG_DIR (use_mapping).
_BUILT_FROM: list[PodioMapping] = [load_mapping(PROJECT_ROOT / "config")]
_add_podio_entities(_BUILT_FROM[0])


def use_mapping(mapping: PodioMapping) -> None:
    """Make the Podio entities those of ``mapping`` (the deployment's CONFIG_DIR), in place:
    the other entities stay, the order too (Podio's first). RulesConfig calls it each time
    it loads, so rules read the apps the sync syncs; an unchanged file costs nothing."""
    if _BUILT_FROM[0] is mapping:
        return
    others = [e for e in ENTITIES.values() if not e.podio_app]
    ENTITIES.clear()
    try:
        _add_podio_entities(mapping)
    except ConfigError:
        ENTITIES.clear()
        _add_podio_entities(_BUILT_FROM[0])
        raise
    finally:
        for entity in others:
            ENTITIES[entity.name] = entity
    _BUILT_FROM[0] = mapping


class PodioEntityNames:
    """The names of the Podio-fed entities as they are now (after ``use_mapping``): what a
    Podio action accepts as its item."""

    def __contains__(self, name: object) -> bool:
        entity = ENTITIES.get(str(name))
        return entity is not None and entity.podio_app is not None

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, e in ENTITIES.items() if e.podio_app])

    def __len__(self) -> int:
        return sum(1 for e in ENTITIES.values() if e.podio_app)


PODIO_ENTITIES = PodioEntityNames()

_add(Entity(
    "encuesta", "encuestas", SurveyResponse, ("survey", "survey_response"), tool="google",
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
    "incidencia", "incidencias", Incident, ("incident",), tool="jira",
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
    "uso", "filas de uso", UsageMetric, ("usage", "usage_metric"), tool="google",
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
