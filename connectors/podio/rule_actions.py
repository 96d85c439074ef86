"""Podio's rule actions: thin adapters over ``connectors.podio.actions`` (loaded into
``rules.actions.REGISTRY`` through ``connectors.registry``).

- ``podio.actualizar``: every field of one item in one PUT (hook=false); repeating it is
  harmless, so an unclear outcome is simply sent again. The updates of one phase of a rule
  cycle to the same item go out as one PUT (``rules.coalesce``).
- ``podio.tarea`` / ``podio.comentario``: carry the ledger's marker as Podio external_id and
  are found again by it after a crash.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.clients import ActionRuntime
from rules.actions.base import (
    BOOLEAN,
    DATE,
    FIELDS,
    PERSON,
    RECORD,
    TEXT,
    TEXTS,
    ActionSkipped,
    ActionType,
    CheckContext,
    Coalesce,
    Param,
    PrepareContext,
    Prepared,
    from_json,
    record_ref,
    short,
    to_json,
)
from rules.catalog import ENTITIES, PODIO_ENTITIES
from rules.problems import suggest
from rules.types import EntT
from rules.values import Arg
from store.db import utcnow


def podio_item(record: Any, label: str = "item") -> tuple[str, int, dict[str, Any]]:
    """(entity, item_id, record) of a record that comes from Podio."""
    ref = record_ref(record)
    if ref is None:
        raise ActionSkipped(f'"{label}" está vacío: no hay item de Podio al que escribir')
    entity, source, source_id = ref
    if source != "podio" or not source_id:
        raise ActionSkipped(f"{entity} #{record.get('id')} no viene de Podio")
    return entity, int(source_id), record


def podio_value(value: Any, config: Any) -> Any:
    """A rule value as the Podio primitive expects it (people -> profile id, records ->
    item id, decimals -> float)."""
    if isinstance(value, dict) and "_entity" in value:
        if value["_entity"] == "personal":
            return value.get("perfil_podio")
        return int(value["id_origen"]) if value.get("id_origen") else None
    if isinstance(value, str) and "@" in value:
        person = config.staff_by_email(value)
        return person["perfil_podio"] if person else value
    if isinstance(value, list):
        return [podio_value(v, config) for v in value]
    return value


def _column_value(value: Any, column: str) -> Any:
    """The model value a Podio write will produce in ``column`` (own-write recognition)."""
    if isinstance(value, dict) and "_entity" in value:
        return value.get("id_origen") if column.endswith("_source_id") else value.get("id")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _app_id(ctx: PrepareContext, entity: str) -> int | None:
    """The Podio app of an entity's items (whose app token reaches them), when known."""
    return ctx.config.podio_app_id(entity) if ctx.config is not None else None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


# --- podio.actualizar ------------------------------------------------------------------


def _check_update(args: dict[str, Arg], ctx: CheckContext) -> None:
    item = args.get("item")
    entity = (item.static.entity if item is not None and isinstance(item.static, EntT)
              else ctx.rule_entity if item is None else None)
    fields_arg = args.get("campos")
    if entity is None or fields_arg is None:
        return
    if entity not in PODIO_ENTITIES:
        ctx.sink.add(ctx.line, f'acción "podio.actualizar": {entity} no es un item de Podio; '
                               f'indica "item:" (p. ej. "{entity}.ticket")')
        return
    known = ctx.config.podio_fields(entity)
    if not known:
        return
    plural = ENTITIES[entity].plural
    for name in fields_arg.fields:
        if name not in known:
            ctx.sink.add(fields_arg.field_lines.get(name, ctx.line),
                         f'acción "podio.actualizar": el campo "{name}" no existe en {plural}'
                         f"{suggest(name, known)}")


def _prepare_update(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    entity, item_id, record = podio_item(values.get("item") or ctx.record)
    mapping = ctx.config.podio_fields(entity)
    fields: dict[str, Any] = {}
    skipped: list[str] = []
    for name, value in values["campos"].items():
        if values.get("solo_vacios"):
            current = record.get(mapping.get(name, {}).get("attr") or name.replace("-", "_"))
            if not _empty(current):
                skipped.append(name)
                continue
        if values.get("omitir_vacios") and _empty(value):
            continue
        fields[name] = podio_value(value, ctx.config)
    columns = {mapping[name]["column"]: _column_value(values["campos"][name],
                                                       mapping[name]["column"])
               for name in fields if name in mapping}
    target = f"{entity}:{record.get('id')}"
    if not fields:
        return Prepared({}, target, "", skip_reason="todos los campos ya tenían valor"
                        if skipped else "no hay campos que escribir")
    summary = f"Podio item {item_id}: " + ", ".join(f"{k}={short(v, 40)}"
                                                    for k, v in fields.items())
    payload = {"item_id": item_id, "app_id": ctx.config.podio_app_id(entity),
               "fields": to_json(fields), "columns": to_json(columns), "entity": entity,
               "kept": skipped, "only_empty": bool(values.get("solo_vacios"))}
    return Prepared(payload, target, summary)


def _coerce(column: Any, value: Any) -> Any:
    """A JSON value of ``payload.columns`` as the model column holds it."""
    python_type = getattr(column.type, "python_type", None)
    if isinstance(value, datetime) and python_type is date:
        return value.date()  # an instant written to a date field keeps its day
    if value is None or not isinstance(value, str):
        return value
    if python_type is datetime:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    if python_type is date:
        return date.fromisoformat(value[:10])
    return value


def _model_row(session: Session, payload: dict[str, Any]) -> Any:
    """The model row of the item a payload writes (None when not synced)."""
    entity = ENTITIES[payload["entity"]]
    return session.scalars(select(entity.model).where(
        entity.model.source == "podio",  # type: ignore[attr-defined]
        entity.model.source_id == str(payload["item_id"]))).one_or_none()  # type: ignore[attr-defined]


def _resolve(session: Session, config: Any, payload: dict[str, Any]) -> None:
    """The foreign keys (and derived columns) of the item, from its stored references."""
    from connectors.podio.sync import resolve_references
    from store.entities import load_mapping

    apps = [a for a in load_mapping(config.settings.config_dir).apps.values()
            if a.entity == payload["entity"]]
    resolve_references(session, apps, [str(payload["item_id"])])


def _write_through(session: Session, config: Any, payload: dict[str, Any]) -> None:
    """Put the fields just written into the model row (and its references' foreign keys),
    as the next sync will read them back."""
    row = _model_row(session, payload)
    if row is None:
        return
    table = row.__table__
    for column, value in from_json(payload.get("columns") or {}).items():
        if column not in table.columns:
            continue
        value = _coerce(table.columns[column], value)
        if column == "status" and "status_since" in table.columns \
                and getattr(row, column) != value:
            row.status_since = utcnow()  # our write's time; the read-back changes nothing
        setattr(row, column, value)
    session.flush()
    _resolve(session, config, payload)


# --- one PUT per item per phase (rules.coalesce) ---------------------------------------


def _update_key(payload: dict[str, Any]) -> str:
    return f"podio:item:{payload['item_id']}"


def _merge_updates(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One PUT for several updates of one item: every field (a later one wins, as a later
    PUT would)."""
    merged = dict(payloads[0])
    fields: dict[str, Any] = {}
    columns: dict[str, Any] = {}
    for payload in payloads:
        fields.update(payload.get("fields") or {})
        columns.update(payload.get("columns") or {})
        merged["app_id"] = merged.get("app_id") or payload.get("app_id")
    merged.update(fields=fields, columns=columns)
    return merged


def _before(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """What the model row holds now in the columns the update writes (as ``columns``)."""
    row = _model_row(session, payload)
    if row is None:
        return {}
    table = row.__table__
    out = {column: _column_value(getattr(row, column), column)
           for column in from_json(payload.get("columns") or {}) if column in table.columns}
    if "status" in out and "status_since" in table.columns:
        out["status_since"] = _column_value(row.status_since, "status_since")
    return dict(to_json(out))


def _same(a: Any, b: Any) -> bool:
    """Model values equal as the database keeps them (a Numeric reads back as Decimal)."""
    numbers = (int, float, Decimal)
    if isinstance(a, numbers) and isinstance(b, numbers) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(float(a) - float(b)) < 1e-9
    return bool(a == b)


def _undo(session: Session, config: Any, payload: dict[str, Any],
          before: dict[str, Any]) -> None:
    """Put back ``before`` where the row still holds what the update wrote through (a
    failed PUT: the model must not keep what Podio does not have)."""
    row = _model_row(session, payload)
    if row is None or not before:
        return
    table = row.__table__
    for column, value in from_json(payload.get("columns") or {}).items():
        if column not in table.columns or column not in before:
            continue
        if not _same(getattr(row, column), _coerce(table.columns[column], value)):
            continue  # changed since (a sync read a person's edit): keep it
        setattr(row, column, _coerce(table.columns[column], from_json(before[column])))
        if column == "status" and "status_since" in before:
            row.status_since = _coerce(table.columns["status_since"],
                                       from_json(before["status_since"]))
    session.flush()
    _resolve(session, config, payload)


def _send_update(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.podio.actions import update_fields

    revision = update_fields(rt.client("podio"), int(payload["item_id"]),
                             from_json(payload["fields"]), app_id=payload.get("app_id"),
                             hook=False)
    return f"item {payload['item_id']} rev {revision}"


UPDATE = ActionType(
    "podio.actualizar",
    "Escribe campos de un item de Podio en una sola llamada (sin disparar webhooks).",
    {"item": Param(RECORD, doc="el item a escribir (por omisión, el de la regla)",
                   entities=PODIO_ENTITIES),
     "campos": Param(FIELDS, required=True, doc="external_id del campo: valor"),
     "solo_vacios": Param(BOOLEAN, default=False,
                          doc="true: no sobrescribe un campo que ya tiene valor"),
     "omitir_vacios": Param(BOOLEAN, default=False,
                            doc="true: no escribe los campos cuyo valor calculado está vacío")},
    _prepare_update, _send_update, None, _check_update, _write_through,
    coalesce=Coalesce(_update_key, _merge_updates, _before, _undo))


# --- podio.tarea -----------------------------------------------------------------------


# podio.tarea's "item" when the rule does not give one (an explicit "item:" that comes out
# empty still falls back to the rule's record, and is skipped if that is no Podio item).
_RULE_ITEM = "(el de la regla)"


def _prepare_task(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    item_id: int | None
    item = values.get("item")
    if item == _RULE_ITEM and ctx.entity not in PODIO_ENTITIES:
        # No "item:" in a rule over something that is no Podio item (e.g. a digest per
        # person of «personal»): a task with no reference, in the responsible's tasks.
        item_id, target = None, (f"{ctx.entity}:{(ctx.record or {}).get('id')}"
                                 if ctx.entity else "tarea")
    else:
        entity, item_id, record = podio_item(ctx.record if item == _RULE_ITEM
                                             else item or ctx.record)
        target = f"{entity}:{record.get('id')}"
    person = values.get("responsable")
    user_id = None
    if isinstance(person, dict) and person.get("_entity") == "personal":
        user_id = person.get("usuario_podio")
    elif isinstance(person, str) and person:
        found = ctx.config.staff_by_email(person) or ctx.config.staff_by_key(person)
        user_id = found["usuario_podio"] if found else None
    if user_id is None:
        raise ActionSkipped("la tarea no tiene responsable con usuario de Podio "
                            f"(responsable = {short(person)})")
    due = values.get("vence")
    payload = {"item_id": item_id, "text": values["texto"],
               "app_id": None if item_id is None else _app_id(ctx, entity),
               "description": values.get("descripcion") or "",
               "responsible_user_id": int(user_id), "due_on": to_json(due),
               "labels": values.get("etiquetas") or ["saeko-sync"]}
    where = "sin item" if item_id is None else f"en Podio item {item_id}"
    summary = (f"tarea {where} para usuario {user_id}: "
               f"{short(values['texto'], 60)}" + (f" (vence {short(due)})" if due else ""))
    return Prepared(payload, target, summary)


def _send_task(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.podio.actions import create_task

    item_id = payload.get("item_id")
    task_id = create_task(rt.client("podio"), item_id=None if item_id is None else int(item_id),
                          text=payload["text"], description=payload["description"],
                          responsible_user_id=payload["responsible_user_id"],
                          due_on=from_json(payload["due_on"]), marker=marker,
                          labels=payload.get("labels"), app_id=payload.get("app_id"))
    return f"tarea {task_id}"


def _find_task(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str | None:
    from connectors.podio.actions import find_task

    item_id = payload.get("item_id")
    task_id = find_task(rt.client("podio"), marker,
                        item_id=None if item_id is None else int(item_id),
                        app_id=payload.get("app_id"))
    return None if task_id is None else f"tarea {task_id}"


TASK = ActionType(
    "podio.tarea",
    "Crea una tarea de Podio en un item (o sin item, si la regla no es de un item de "
    "Podio), asignada a una persona, una sola vez.",
    {"item": Param(RECORD, default=_RULE_ITEM,
                   doc="el item de la tarea (por omisión, el de la regla; en una regla de "
                       "algo que no es item de Podio, como personal, ninguno)",
                   entities=PODIO_ENTITIES),
     "texto": Param(TEXT, required=True), "descripcion": Param(TEXT),
     "responsable": Param(PERSON, required=True, doc="p. ej. ticket.am"),
     "vence": Param(DATE, doc="fecha o fecha y hora; p. ej. {{ sumar_dias_habiles(hoy, 1) }}"),
     "etiquetas": Param(TEXTS)},
    _prepare_task, _send_task, _find_task)


# --- podio.comentario ------------------------------------------------------------------


def _prepare_comment(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    entity, item_id, record = podio_item(values.get("item") or ctx.record)
    payload = {"item_id": item_id, "text": values["texto"], "app_id": _app_id(ctx, entity)}
    return Prepared(payload, f"{entity}:{record.get('id')}",
                    f"comentario en Podio item {item_id}: {short(values['texto'], 60)}")


def _send_comment(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.podio.actions import add_comment

    comment_id = add_comment(rt.client("podio"), int(payload["item_id"]), payload["text"],
                             marker, app_id=payload.get("app_id"))
    return f"comentario {comment_id}"


def _find_comment(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str | None:
    from connectors.podio.actions import find_comment

    comment_id = find_comment(rt.client("podio"), int(payload["item_id"]), marker,
                              app_id=payload.get("app_id"))
    return None if comment_id is None else f"comentario {comment_id}"


COMMENT = ActionType(
    "podio.comentario",
    "Comenta en un item de Podio una sola vez (sin disparar webhooks).",
    {"item": Param(RECORD, doc="el item a comentar (por omisión, el de la regla)",
                   entities=PODIO_ENTITIES),
     "texto": Param(TEXT, required=True)},
    _prepare_comment, _send_comment, _find_comment)

ACTIONS = [UPDATE, TASK, COMMENT]
