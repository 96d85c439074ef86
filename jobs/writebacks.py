"""What the automations wrote back, read from the action ledger: the demo's table and the
status page's "escrito hoy" both describe ledger rows this way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.podio.links import PODIO_TASK_URL, item_url
from store.models import ActionLedger

EFFECT_LABELS = {"podio.actualizar": "campos escritos", "podio.tarea": "tareas",
                 "podio.comentario": "comentarios", "jira.crear": "incidencias creadas",
                 "jira.comentar": "comentarios en Jira", "gmail.enviar": "correos",
                 "calendario.reunion": "reuniones en Calendar (M8)"}
# Effects the demo's table leaves out and the status page lists too.
MORE_LABELS = {"jira.transicion": "transiciones en Jira", "jira.enlace": "enlaces en Jira",
               "calendario.evento": "eventos en Calendar", "sheets.tabla": "pestañas escritas",
               "sheets.kpis": "publicaciones de la hoja de KPIs"}


def automation_of(rule_id: str | None) -> str:
    """The automation a rule belongs to: its id's prefix ("t3-escalar-a-jira" → "T3")."""
    return (rule_id or "—").split("-")[0].upper()


def written(rows: Iterable[ActionLedger], *, every_effect: bool = False) -> str:
    """"3 items: estatus, prioridad; 2 correos: «…» y 1 más; 1 tareas" for done rows;
    ``every_effect``: also the effects of MORE_LABELS (and any other, by its name)."""
    rows = list(rows)
    parts: list[str] = []
    labels = dict(EFFECT_LABELS)
    if every_effect:
        labels |= MORE_LABELS
        labels |= {r.action: r.action for r in rows if r.action not in labels}
    for action, label in labels.items():
        these = [r for r in rows if r.action == action]
        if not these:
            continue
        if action == "podio.actualizar":
            fields = sorted({f for r in these for f in _args(r).get("fields", {})})
            parts.append(f"{len(these)} items: {', '.join(fields)}")
        elif action == "gmail.enviar":
            subjects = [str(_args(r).get("subject", "")) for r in these]
            parts.append(f"{len(these)} {label}: «{subjects[0]}»"
                         + (f" y {len(these) - 1} más" if len(these) > 1 else ""))
        else:
            parts.append(f"{len(these)} {label}")
    return "; ".join(parts) or "—"


@dataclass(frozen=True)
class Ref:
    """Where a person looks at an effect: a label and, when there is one, a link."""

    label: str
    url: str | None = None
    item_id: int | None = None  # a Podio item: its own link can replace the short form


def refs(rows: Iterable[ActionLedger], jira_url: str = "") -> list[Ref]:
    """The Podio items, Jira issues and Podio tasks the rows wrote to, once each, in order."""
    out: list[Ref] = []
    for row in rows:
        ref = ref_of(row, jira_url)
        if ref is not None and ref not in out:
            out.append(ref)
    return out


def ref_of(row: ActionLedger, jira_url: str = "") -> Ref | None:
    """Where one ledger row's effect is: its Podio item, its Jira issue, or its task."""
    args = _args(row)
    if row.action.startswith("jira.crear") and row.external_ref:
        return jira_ref(row.external_ref, jira_url)
    if args.get("item_id"):
        return Ref(f"item {args['item_id']}", item_url(args["item_id"]),
                   int(args["item_id"]) if str(args["item_id"]).isdigit() else None)
    if args.get("key"):
        return jira_ref(str(args["key"]), jira_url)
    if row.action == "podio.tarea" and row.external_ref:
        task = str(row.external_ref).removeprefix("tarea ").strip()
        return Ref(str(row.external_ref),
                   PODIO_TASK_URL.format(task_id=task) if task.isdigit() else None)
    return None


def jira_ref(key: str, jira_url: str) -> Ref:
    return Ref(f"Jira {key}", f"{jira_url.rstrip('/')}/browse/{key}" if jira_url else None)


def _args(row: ActionLedger) -> dict[str, Any]:
    args = (row.payload or {}).get("args")
    return args if isinstance(args, dict) else {}
