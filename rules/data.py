"""Bulk loading of records for rules: one query for the entities a rule looks at and one per
relation it reads (``ticket.cliente.am`` = tickets, then clients, then staff), whatever the
number of entities. Records are plain dicts with the admins' field names, plus ``_entity``
and ``_source`` for the actions."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from rules.catalog import ENTITIES, Entity

# SQLite's default limit of host parameters is 999; stay under it for IN (...) lists.
IN_CHUNK = 900

Record = dict[str, Any]
Tree = dict[str, "Tree"]


def relation_tree(entity: str, paths: Iterable[tuple[str, ...]]) -> Tree:
    """{('cliente', 'am', 'email'), ('escuela',)} -> {'cliente': {'am': {}}, 'escuela': {}}."""
    tree: Tree = {}
    for path in paths:
        node, current = tree, ENTITIES[entity]
        for name in path:
            relation = current.relations.get(name)
            if relation is None:
                break
            node = node.setdefault(name, {})
            current = ENTITIES[relation.target]
    return tree


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


class Loader:
    """Loads records of one entity and the relations a rule needs, in bulk."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.queries = 0

    def load(self, entity: str, ids: Iterable[int] | None, tree: Tree, *,
             include_deleted: bool = False) -> dict[int, Record]:
        """Records by id (all live ones when ``ids`` is None)."""
        definition = ENTITIES[entity]
        table = definition.model.__table__  # type: ignore[attr-defined]
        columns = [table.c[name] for name in definition.columns()]
        rows: list[Any] = []
        if ids is None:
            query = select(*columns)
            if definition.synced and not include_deleted:
                query = query.where(table.c.deleted_at.is_(None))
            rows = list(self.session.execute(query.order_by(table.c.id)).mappings())
            self.queries += 1
        else:
            wanted = sorted(set(ids))
            for chunk in _chunks(wanted):
                rows.extend(self.session.execute(
                    select(*columns).where(table.c.id.in_(chunk))).mappings())
                self.queries += 1
        pairs = [(build_record(definition, row), row) for row in rows]
        self._relations(definition, pairs, tree)
        return {record["id"]: record for record, _row in pairs}

    def _relations(self, definition: Entity, pairs: list[tuple[Record, Any]], tree: Tree
                   ) -> None:
        for name, subtree in tree.items():
            relation = definition.relations[name]
            target = ENTITIES[relation.target]
            keys = {row[relation.local] for _rec, row in pairs
                    if row[relation.local] is not None}
            if relation.casefold:
                keys = {str(k).lower() for k in keys}
            found = self._targets(target, relation.remote, sorted(keys), relation.latest_by,
                                  relation.casefold, subtree)
            for record, row in pairs:
                key = row[relation.local]
                if relation.casefold and key is not None:
                    key = str(key).lower()
                record[name] = found.get(key) if key is not None else None

    def _targets(self, target: Entity, remote: str, keys: list[Any], latest_by: str | None,
                 casefold: bool, subtree: Tree) -> dict[Any, Record]:
        if not keys:
            return {}
        table = target.model.__table__  # type: ignore[attr-defined]
        columns = [table.c[name] for name in target.columns()]
        remote_col = table.c[remote]
        match_col = func.lower(remote_col) if casefold else remote_col
        rows: list[Any] = []
        for chunk in _chunks(keys):
            query = select(*columns, match_col.label("_match")).where(match_col.in_(chunk))
            if target.synced:
                query = query.where(table.c.deleted_at.is_(None))
            order = [table.c[latest_by]] if latest_by else []
            rows.extend(self.session.execute(query.order_by(*order, table.c.id)).mappings())
            self.queries += 1
        pairs = [(build_record(target, row), row) for row in rows]
        self._relations(target, pairs, subtree)
        out: dict[Any, Record] = {}
        for record, row in pairs:
            out[row["_match"]] = record  # ordered ascending: the latest one wins
        return out


def build_record(definition: Entity, row: Any) -> Record:
    """A model row (mapping) -> the record dict rules read."""
    record: Record = {"_entity": definition.name}
    if definition.synced:
        record["_source"] = row["source"]
    for name, f in definition.fields.items():
        value = row[f.column]
        record[name] = float(value) if isinstance(value, Decimal) else value
    for name in definition.relations:
        record[name] = None
    return record


class UnknownRecord(ValueError):
    """No record is called that (the message, in Spanish, says what was tried)."""


def find_record(session: Session, entity: str, given: str | int) -> int:
    """The model id of the record people call ``given``, as they see it in the tools: a
    Podio item id (or another tool's id), a Jira key (SOP-12: the issue, or the ticket
    escalated to it), an email or key for «personal», else the model's own id."""
    definition = ENTITIES[entity]
    model: Any = definition.model
    text = str(given).strip()
    found: Any = None
    if definition.synced:
        found = session.scalar(select(model.id).where(model.source_id == text))
        for column in ("key", "jira_key"):  # a Jira key: incidencia, or its ticket
            if found is None and hasattr(model, column):
                found = session.scalar(select(model.id).where(
                    func.upper(getattr(model, column)) == text.upper()).order_by(model.id))
    elif hasattr(model, "email"):
        found = session.scalar(select(model.id).where(or_(
            model.email == text, getattr(model, "key", model.email) == text)))
    if found is not None:
        return int(found)
    digits = text.lstrip("#")
    if digits.isdigit() and session.get(model, int(digits)) is not None:
        return int(digits)
    tried = ("item de Podio, clave de Jira ni id del modelo" if definition.synced
             else "correo, clave ni id del modelo")
    raise UnknownRecord(f"no existe ningún(a) {entity} «{text}» (ni {tried})")
