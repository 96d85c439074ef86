"""Jira's rule actions: thin adapters over ``connectors.jira.actions`` (create / comment /
transition / remote link, each creating call carrying the ledger's marker), loaded into
``rules.actions.REGISTRY`` through ``connectors.registry``."""

from __future__ import annotations

from typing import Any

import structlog

from connectors.clients import ActionRuntime
from connectors.podio.links import item_url
from core.errors import ConnectorError
from rules.actions.base import (
    RECORD,
    TEXT,
    ActionSkipped,
    ActionType,
    Creates,
    Param,
    PrepareContext,
    Prepared,
    record_ref,
    short,
)

log = structlog.get_logger(__name__)



def _ticket_ref(record: Any) -> dict[str, Any]:
    ref = record_ref(record)
    if ref is None or ref[0] != "ticket":
        return {}
    return {"ticket_item_id": int(ref[2]) if ref[1] == "podio" and ref[2] else None,
            "ticket_id": record.get("id")}


def _prepare_create(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    ticket = values.get("ticket") or (ctx.record if ctx.entity == "ticket" else None)
    ref = _ticket_ref(ticket)
    item_id = ref.get("ticket_item_id")
    if item_id is None:
        raise ActionSkipped("jira.crear necesita un ticket de Podio (ticket:) para ligarlo")
    payload = {"project": values["proyecto"], "issue_type": values.get("tipo") or "Error",
               "summary": values["resumen"], "description": values.get("descripcion") or "",
               "priority": values.get("prioridad"), "ticket_item_id": item_id,
               "ticket_url": values.get("enlace") or None}
    target = f"ticket:{ticket.get('id')}" if isinstance(ticket, dict) else payload["project"]
    return Prepared(payload, target, f"incidencia en Jira {payload['project']}: "
                                     f"{short(payload['summary'], 60)}")


def ticket_link(rt: ActionRuntime, item_id: int | None) -> str | None:
    """The Podio item's own link (``link`` of GET /item/{id}); the short form when Podio
    cannot be read now (logged), None without an item."""
    if item_id is None:
        return None
    try:
        link = rt.client("podio").get_item(int(item_id)).get("link")
    except ConnectorError as exc:
        log.warning("jira.ticket_link_fallback", item_id=item_id, error=str(exc))
        link = None
    # The Jira issue links back to the item's own link, read when the issue is created;
    # the short form only when Podio cannot be read then.
    return item_url(item_id, {"link": link})


def _send_create(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.jira import actions

    args = dict(payload)
    args["ticket_url"] = args.get("ticket_url") or ticket_link(rt, args.get("ticket_item_id"))
    return str(actions.create_issue_for_ticket(rt.client("jira"), marker=marker, **args))


def _find_create(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str | None:
    from connectors.jira import actions

    found = actions.find_issue_by_marker(rt.client("jira"), marker)
    if found is None:
        return None
    # Made by an attempt that died before linking back: the link (keyed by its globalId)
    # is added now, or updated in place.
    actions.link_ticket(rt.client("jira"), str(found), payload["ticket_item_id"],
                        payload.get("ticket_url") or ticket_link(rt, payload["ticket_item_id"])
                        or "")
    return str(found)


def _prepare_comment(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    payload = {"key": values["clave"], "text": values["texto"]}
    return Prepared(payload, f"jira:{payload['key']}",
                    f"comentario en {payload['key']}: {short(payload['text'], 60)}")


def _send_comment(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.jira import actions

    return "comentario " + str(actions.comment(rt.client("jira"), payload["key"],
                                               payload["text"], marker))


def _find_comment(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str | None:
    from connectors.jira import actions

    found = actions.find_comment(rt.client("jira"), payload["key"], marker)
    return None if found is None else f"comentario {found}"


def _prepare_transition(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    payload = {"key": values["clave"], "status": values["a"]}
    return Prepared(payload, f"jira:{payload['key']}",
                    f"mover {payload['key']} a «{payload['status']}»")


def _send_transition(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.jira import actions

    result = actions.transition_to(rt.client("jira"), payload["key"], payload["status"])
    return f"{payload['key']} → {payload['status']}" if result is None else str(result)


def _prepare_link(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    payload = {"key": values["clave"], "url": values["url"],
               "title": values.get("titulo") or values["url"]}
    return Prepared(payload, f"jira:{payload['key']}",
                    f"enlace en {payload['key']} a {short(payload['url'], 60)}")


def _send_link(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.jira import actions

    # The marker is the link's globalId: Jira updates rather than duplicates on a resend.
    return "enlace " + str(actions.add_remote_link(rt.client("jira"), payload["key"],
                                                   payload["url"], payload["title"], marker))


ACTIONS = [
    ActionType("jira.crear", "Crea una incidencia en Jira (una sola vez) ligada al ticket.",
               {"proyecto": Param(TEXT, required=True, doc="SOP, DEV o PROD"),
                "tipo": Param(TEXT, default="Error"), "resumen": Param(TEXT, required=True),
                "descripcion": Param(TEXT), "prioridad": Param(TEXT),
                "ticket": Param(RECORD, entities=("ticket",),
                                doc="el ticket de Podio (por omisión, el de la regla)"),
                "enlace": Param(TEXT, doc="URL del ticket en Podio para el enlace de vuelta")},
               _prepare_create, _send_create, _find_create,
               creates=Creates("incidencia", "key")),
    ActionType("jira.comentar", "Comenta una incidencia de Jira una sola vez.",
               {"clave": Param(TEXT, required=True), "texto": Param(TEXT, required=True)},
               _prepare_comment, _send_comment, _find_comment),
    ActionType("jira.transicion", "Mueve una incidencia de Jira a un estatus.",
               {"clave": Param(TEXT, required=True), "a": Param(TEXT, required=True)},
               _prepare_transition, _send_transition, None),
    ActionType("jira.enlace", "Agrega un enlace (remote link) a una incidencia, una vez.",
               {"clave": Param(TEXT, required=True), "url": Param(TEXT, required=True),
                "titulo": Param(TEXT)},
               _prepare_link, _send_link, None),
]
