"""M9: the email templates of ``config/plantillas/`` as admins work with them.

- ``template_uses``: which rule (and which of its ``gmail.enviar`` actions) uses each
  template; ``list_templates``: each template file with the variables it reads and those
  rules (``saeko-sync plantillas lista``).
- ``unused_problems``: a template no rule uses is still checked for its syntax (file:line,
  in Spanish) by ``saeko-sync rules validate``; its variables can only be checked against a
  rule's data, so they are checked when a rule uses it (rules/values.py).
- ``preview``: one template rendered with real data from the store, as the rule that uses
  it would send it now (``saeko-sync plantillas prueba NOMBRE --entidad ID``): the record by
  the id people see (the Podio item id) or the model's id; subject, recipients, text and
  HTML. Nothing is written: it renders inside a dry-run cycle and rolls back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from core.settings import Settings
from rules.actions.base import TEMPLATE_FILE, ActionSkipped, PrepareContext
from rules.config import RulesConfig
from rules.data import find_record
from rules.engine import CycleEngine, CycleReport
from rules.expr import EvalError
from rules.functions import FUNCTIONS
from rules.problems import Problem, suggest
from rules.ruleset import RuleSet, load_rules
from rules.spec import ActionSpec, Rule
from rules.templates import TemplateRenderError, environment, jinja_message, unclosed_block
from store.db import Database, utcnow

PARTS = {"txt": "texto", "html": "html"}


@dataclass
class TemplateInfo:
    """One template of config/plantillas/: its files, variables and the rules using it."""

    name: str
    files: list[str]
    variables: list[str]
    functions: list[str]
    rules: list[str] = field(default_factory=list)


@dataclass
class PreviewResult:
    """A template rendered for one record."""

    template: str
    rule: str
    entity: str
    entity_label: str
    to: list[str]
    subject: str
    text: str
    html: str | None
    others: list[str] = field(default_factory=list)  # other rules using the template


def template_uses(ruleset: RuleSet) -> dict[str, list[tuple[Rule, ActionSpec]]]:
    """Template name -> the (rule, action) pairs that send it."""
    uses: dict[str, list[tuple[Rule, ActionSpec]]] = {}
    for rule in ruleset.rules.values():
        for spec in rule.actions:
            for arg in spec.args.values():
                if arg.kind == TEMPLATE_FILE and isinstance(arg.literal, str):
                    uses.setdefault(arg.literal, []).append((rule, spec))
            if spec.type.templates is not None:
                for name in spec.type.templates({k: a.literal for k, a in spec.args.items()}):
                    uses.setdefault(name, []).append((rule, spec))
    return uses


def _names(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lstrip(".") in PARTS and path.is_file():
                found.setdefault(path.stem, []).append(path)
    return found


def _variables(source: str, html: bool) -> tuple[set[str], set[str]]:
    """The record paths (``usuario.escuela.nombre``) and functions a template reads."""
    tree = environment(html).parse(source)
    local = {n.name for node in tree.find_all((nodes.For, nodes.Assign, nodes.With))
             for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")}
    paths: set[str] = set()
    inner: set[int] = set()
    for attr in tree.find_all(nodes.Getattr):
        if id(attr) in inner:
            continue
        chain, node = [attr.attr], attr.node
        while isinstance(node, nodes.Getattr):
            inner.add(id(node))
            chain.append(node.attr)
            node = node.node
        if isinstance(node, nodes.Name) and node.name not in local:
            paths.add(".".join([node.name, *reversed(chain)]))
    called = {c.node.name for c in tree.find_all(nodes.Call)
              if isinstance(c.node, nodes.Name) and c.node.name in FUNCTIONS}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in local and name.name not in FUNCTIONS \
                and not any(p == name.name or p.startswith(name.name + ".") for p in paths):
            paths.add(name.name)
    return paths, called


def list_templates(settings: Settings, db: Database) -> list[TemplateInfo]:
    """Every template with the variables it reads and the rules that use it."""
    config = RulesConfig.from_settings(settings)
    uses = template_uses(load_rules(config, db, record=False))
    out = []
    for name, paths in _names(config.template_dir).items():
        variables: set[str] = set()
        functions: set[str] = set()
        for path in paths:
            try:
                found, called = _variables(path.read_text(encoding="utf-8"),
                                           path.suffix == ".html")
            except TemplateSyntaxError:
                continue  # reported by `rules validate`
            variables |= found
            functions |= called
        out.append(TemplateInfo(name, [p.name for p in paths], sorted(variables),
                                sorted(functions),
                                sorted({r.id for r, _s in uses.get(name, [])})))
    return out


def format_templates(templates: list[TemplateInfo]) -> str:
    lines = []
    for t in templates:
        lines.append(f"{t.name} ({', '.join(t.files)}) — usada por: "
                     f"{', '.join(t.rules) or 'ninguna regla'}")
        lines.append(f"    variables: {', '.join(t.variables) or '—'}")
        if t.functions:
            lines.append(f"    funciones: {', '.join(t.functions)}")
    return "\n".join(lines) or "No hay plantillas en config/plantillas/."


def unused_problems(config: RulesConfig, ruleset: RuleSet) -> list[Problem]:
    """Syntax errors of the templates no rule uses (those a rule uses are checked whole
    when the rule loads)."""
    used = set(template_uses(ruleset)) | _named_in_rule_files(config.rules_dir)
    problems = []
    for name, paths in _names(config.template_dir).items():
        if name in used:
            continue
        for path in paths:
            try:
                environment(path.suffix == ".html").from_string(
                    path.read_text(encoding="utf-8"))
            except TemplateSyntaxError as exc:
                unclosed = unclosed_block(path.read_text(encoding="utf-8"), exc.message)
                problems.append(Problem(
                    f"config/plantillas/{path.name}",
                    unclosed[1] if unclosed else exc.lineno or 1,
                    f"plantilla inválida: {jinja_message(exc.message)} (ninguna regla la usa "
                    "todavía: sus variables se revisan cuando una regla la use)"))
    return problems


def _named_in_rule_files(folder: Path) -> set[str]:
    """The templates a rule file names, loaded or not (a rule that does not load because
    of its template has that problem reported already)."""
    names: set[str] = set()
    for path in sorted(folder.rglob("*.y*ml")) if folder.is_dir() else []:
        names.update(_PLANTILLA.findall(path.read_text(encoding="utf-8")))
    return names


_PLANTILLA = re.compile(r"^\s*plantilla:\s*[\"']?([\w.-]+)", re.M)


def preview(settings: Settings, db: Database, name: str, entity: str | None, *,
            rule_id: str | None = None, now: datetime | None = None) -> PreviewResult:
    """Render template ``name`` for one record, as the rule that uses it would now.
    ValueError (in Spanish) when the template, the rule or the record is not found."""
    now = now or settings.rules_frozen_now or utcnow()
    config = RulesConfig.from_settings(settings)
    ruleset = load_rules(config, db, record=False)
    uses = template_uses(ruleset)
    if name not in uses:
        known = _names(config.template_dir)
        raise ValueError(f"ninguna regla usa la plantilla «{name}»{suggest(name, known)}; "
                         "la prueba usa los datos de la regla que la envía")
    pairs = [(r, s) for r, s in uses[name] if rule_id in (None, r.id)]
    if not pairs:
        raise ValueError(f"la regla «{rule_id}» no usa la plantilla «{name}»; la usan: "
                         + ", ".join(sorted({r.id for r, _s in uses[name]})))
    rule, spec = pairs[0]
    if spec.type.templates is not None:
        raise ValueError(f"«{name}» es la plantilla de un informe ({spec.type.name}): "
                         "pruébalo con `saeko-sync report` (sin --enviar solo escribe los "
                         "archivos)")
    with db.sessions() as session:
        engine = CycleEngine(session, config, ruleset, None, now, CycleReport(started_at=now),
                             dry_run=True)
        ctx = engine.ex.base_ctx(rule)
        ctx["disparador"] = {"tipo": "simulacion", "momento": now}
        label = "—"
        if rule.entity is not None:
            record_id = _record_id(session, rule.entity, entity)
            records = engine.ex.load(rule, [record_id], include_deleted=True)
            ctx[rule.entity] = records[record_id]
            label = _label(rule.entity, records[record_id])
        try:
            values = {k: a.value(ctx) for k, a in spec.args.items()}
            # What the action would send, as its type prepares it (rules/planning.py).
            try:
                sent = spec.type.prepare(values, PrepareContext(
                    config, ctx.get(rule.entity) if rule.entity else None, rule.entity)
                ).payload
            except ActionSkipped:
                sent = {}
        except (TemplateRenderError, EvalError) as exc:
            raise ValueError(f"la plantilla «{name}» no se pudo llenar con {label}: {exc}") \
                from exc
        finally:
            session.rollback()
    body = values.get("plantilla") or {}
    return PreviewResult(name, rule.id, rule.entity or "—", label,
                         [str(a) for a in sent.get("to") or []],
                         str(values.get("asunto") or ""),
                         str(body.get("texto") or ""), body.get("html"),
                         sorted({r.id for r, _s in uses[name]} - {rule.id}))


def _record_id(session: Any, entity: str, given: str | None) -> int:
    """The model id of the record people call ``given`` (rules.data.find_record)."""
    if given is None or not str(given).strip():
        raise ValueError(f"falta el registro: --entidad con el id del item de Podio (o el id "
                         f"del modelo) de un(a) {entity}")
    return find_record(session, entity, given)


def _label(entity: str, record: dict[str, Any]) -> str:
    title = record.get("nombre") or record.get("titulo") or record.get("email") or ""
    podio = record.get("id_podio")
    return f"{entity} #{record['id']}" + (f" (Podio {podio})" if podio else "") + \
        (f" «{title}»" if title else "")


def format_preview(result: PreviewResult, html_file: Path | None = None) -> str:
    lines = [f"Plantilla «{result.template}» con los datos de {result.entity_label}, como "
             f"la enviaría la regla {result.rule} ahora (prueba: no se envía nada)"]
    if result.others:
        lines.append(f"También la usan: {', '.join(result.others)} (--regla para elegir)")
    lines += [f"Para: {', '.join(result.to) or '(sin destinatario: la regla esperaría)'}",
              f"Asunto: {result.subject}", "", result.text.rstrip("\n"), ""]
    if result.html is None:
        lines.append("(la plantilla no tiene versión HTML)")
    elif html_file is not None:
        html_file.write_text(result.html, encoding="utf-8")
        lines.append(f"HTML guardado en {html_file} ({len(result.html):,} caracteres)")
    else:
        lines.append(f"HTML: {len(result.html):,} caracteres (--html ARCHIVO para guardarlo)")
    return "\n".join(lines)
