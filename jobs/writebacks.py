"""What the automations wrote back, read from the action ledger: the demo's table and the
status page's "escrito hoy" both describe ledger rows this way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.podio.links import PODIO_TASK_URL
from store.models import ActionLedger

EFFECT_LABELS = {"podio.actualizar": "campos escritos", "podio.tarea": "tareas",
                 "podio.comentario": "comentarios", "jira.crear": "incidencias creadas",
                 "jira.comentar": "comentarios en Jira", "gmail.enviar": "correos",
                 "calendario.reunion": "reuniones en Calendar (M8)",
                 "gmail.informe": "informes por correo (M10/M12)",
                 "sheets.informe": "pestañas de informes"}
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
    """Where a person looks at an effect: a label, and the tool's record it is on — by its
    source id (a synced record: ``Links`` finds its title and own link) or by what the
    tool's ``record_url`` needs (``raw``) — or a ready ``url``."""

    label: str
    tool: str | None = None
    source_id: str | None = None
    raw: dict[str, Any] | None = None
    url: str | None = None


def refs(rows: Iterable[ActionLedger]) -> list[Ref]:
    """The records the rows wrote to (items, issues, tasks), once each, in order."""
    out: list[Ref] = []
    for row in rows:
        ref = ref_of(row)
        if ref is not None and ref not in out:
            out.append(ref)
    return out


def ref_of(row: ActionLedger) -> Ref | None:
    """Where one ledger row's effect is: the record it wrote to, the issue it created, or
    its task (the tool is the action's prefix: "podio.actualizar" → podio)."""
    args = _args(row)
    tool = row.action.split(".")[0]
    if row.action.endswith(".crear") and row.external_ref:
        ref = str(row.external_ref)
        return Ref(f"{tool.capitalize()} {ref}", tool, raw={"key": ref})
    if args.get("item_id"):
        return Ref(f"item {args['item_id']}", tool, source_id=str(args["item_id"]))
    if args.get("key"):
        return Ref(f"{tool.capitalize()} {args['key']}", tool, raw={"key": args["key"]})
    if row.action == "podio.tarea" and row.external_ref:  # a task on no item
        task = str(row.external_ref).removeprefix("tarea ").strip()
        return Ref(str(row.external_ref),
                   url=PODIO_TASK_URL.format(task_id=task) if task.isdigit() else None)
    return None


def _args(row: ActionLedger) -> dict[str, Any]:
    args = (row.payload or {}).get("args")
    return args if isinstance(args, dict) else {}
