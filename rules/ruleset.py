"""Loading a folder of rule files: every valid rule is loaded, every broken file is reported
with file:line, and a broken edit of a rule that used to be valid leaves its last good
version running (kept in the ``rule_state`` table, so it survives restarts)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.config import RulesConfig
from rules.parser import RuleParser
from rules.problems import Problem, ProblemSink
from rules.spec import Rule
from rules.yamlsrc import LList, LMap, YamlProblem, load_located
from store.db import Database, utcnow
from store.models import RuleState

log = structlog.get_logger(__name__)
RULE_SUFFIXES = (".yaml", ".yml")
# Compiling YAML and templates is most of an idle cycle's time (~0.25 s for the shipped
# rules), and an unchanged file under unchanged config compiles to the same rules: parsed
# files are kept by (path, content hash, config fingerprint). Rules are not mutated after
# parsing (fallback copies are parsed afresh), so sharing them across cycles is safe.
_PARSED: dict[tuple[str, str, str], ParsedFile] = {}
PARSE_CACHE_LIMIT = 256


@dataclass
class ParsedFile:
    path: str
    hash: str
    text: str
    rules: list[Rule]
    problems: list[Problem]
    ids: list[tuple[str, int]] = field(default_factory=list)  # ids seen, even broken ones


@dataclass
class RuleSet:
    """The rules in force, and what is wrong with the files."""

    rules: dict[str, Rule]
    problems: list[Problem]
    files: list[ParsedFile]

    def get(self, rule_id: str) -> Rule | None:
        return self.rules.get(rule_id)

    @property
    def fallbacks(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.fallback]


def file_hash(text: str) -> str:
    """The version of a rule file recorded with every run."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def display_path(path: Path, config: RulesConfig) -> str:
    """The path admins see: relative to the project (config/rules/t1.yaml) when possible."""
    root = Path(config.settings.config_dir).resolve().parent
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def parse_text(text: str, shown: str, config: RulesConfig) -> ParsedFile:
    """Parse one file's text into valid rules and problems (nothing half-loaded)."""
    digest = file_hash(text)
    parsed = ParsedFile(shown, digest, text, [], [])
    sink = ProblemSink(shown)
    try:
        data = load_located(text)
    except YamlProblem as exc:
        sink.add(exc.line, exc.message)
        parsed.problems = sink.problems
        return parsed
    if data is None:
        sink.add(1, "el archivo está vacío: escribe una regla (id:, nombre:, disparadores:, "
                    "acciones:)")
    items = list(data) if isinstance(data, LList) else [data] if data is not None else []
    lines = ([data.line_of(i) for i in range(len(data))] if isinstance(data, LList)
             else [getattr(data, "line", 1)])
    parser = RuleParser(config, sink, shown, digest)
    seen: dict[str, int] = {}
    for item, line in zip(items, lines, strict=False):
        sink.rule_id = None
        rule_id = item.get("id") if isinstance(item, LMap) else None
        if isinstance(rule_id, str):
            id_line = item.line_of("id")
            parsed.ids.append((rule_id, id_line))
            if rule_id in seen:
                sink.rule_id = rule_id
                sink.add(id_line, f'id duplicado "{rule_id}": ya se usa en la línea '
                                  f"{seen[rule_id]} de este archivo")
                continue
            seen[rule_id] = id_line
        rule = parser.parse(item, line)
        if rule is not None:
            parsed.rules.append(rule)
    parsed.problems = sink.problems
    if parsed.problems:
        parsed.rules = []  # one broken rule makes its file broken: fix it, nothing half-loads
    return parsed


def rule_files(path: Path) -> list[Path]:
    """Rule files under ``path`` (a file or folder), skipping names starting with _ or ."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))


def parse_path(path: Path, config: RulesConfig) -> list[ParsedFile]:
    """Parse every rule file under ``path`` and report duplicate ids across files."""
    files: list[ParsedFile] = []
    owners: dict[str, tuple[str, int]] = {}
    fingerprint = _config_fingerprint(config)
    for file in rule_files(path):
        shown = display_path(file, config)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            files.append(ParsedFile(shown, "", "", [], [Problem(
                shown, 1, f"no se puede leer el archivo ({exc}); guárdalo como UTF-8")]))
            continue
        parsed = _parse_cached(text, shown, config, fingerprint)
        for rule_id, line in parsed.ids:
            if rule_id in owners and owners[rule_id][0] != shown:
                first_path, first_line = owners[rule_id]
                parsed.problems.append(Problem(
                    shown, line, f'id duplicado "{rule_id}": ya lo usa {first_path}:'
                                 f"{first_line}; cambia uno de los dos", rule_id))
                parsed.rules = []
            owners.setdefault(rule_id, (shown, line))
        files.append(parsed)
    return files


def _config_fingerprint(config: RulesConfig) -> str:
    """Changes when anything a rule compiles against changes: the other config files
    (mappings, staff, calendar, templates) and the settings rules read."""
    rules_dir = config.rules_dir.resolve()
    parts = [config.zone, repr(sorted(config.settings.podio_apps.items()))]
    for file in sorted(Path(config.settings.config_dir).rglob("*")):
        if file.is_file() and rules_dir not in file.resolve().parents:
            stat = file.stat()
            parts.append(f"{file}:{stat.st_mtime_ns}:{stat.st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _parse_cached(text: str, shown: str, config: RulesConfig, fingerprint: str) -> ParsedFile:
    """parse_text, remembered; returns a fresh ParsedFile (callers edit its lists)."""
    key = (shown, file_hash(text), fingerprint)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = parse_text(text, shown, config)
        if len(_PARSED) >= PARSE_CACHE_LIMIT:
            _PARSED.clear()
        _PARSED[key] = parsed
    return ParsedFile(parsed.path, parsed.hash, parsed.text, list(parsed.rules),
                      list(parsed.problems), list(parsed.ids))


def validate_path(path: Path, config: RulesConfig) -> list[Problem]:
    """Every problem under ``path`` (a file or a folder); empty when all is valid."""
    if not path.exists():
        return [Problem(str(path), 1, "no existe ese archivo o carpeta")]
    return [p for parsed in parse_path(path, config) for p in parsed.problems]


def load_rules(config: RulesConfig, db: Database | None = None,
               path: Path | None = None, *, record: bool = True) -> RuleSet:
    """The rules in force. With a store, broken files fall back to their last good version
    and (``record``) every valid file becomes the new last good version."""
    files = parse_path(path or config.rules_dir, config)
    rules: dict[str, Rule] = {}
    problems = [p for parsed in files for p in parsed.problems]
    for parsed in files:
        for rule in parsed.rules:
            rules.setdefault(rule.id, rule)
    if db is not None:
        _sync_state(db, config, files, rules, record)
    for problem in problems:
        log.warning("rules.invalid", path=problem.path, line=problem.line,
                    message=problem.message, rule=problem.rule_id)
    return RuleSet(rules, problems, files)


def _sync_state(db: Database, config: RulesConfig, files: list[ParsedFile],
                rules: dict[str, Rule], record: bool) -> None:
    now = utcnow()
    with db.session() as session:
        _apply_state(session, config, files, rules, now)
        if not record:
            session.rollback()


def _apply_state(session: Session, config: RulesConfig, files: list[ParsedFile],
                 rules: dict[str, Rule], now: datetime) -> None:
    states = {s.rule_id: s for s in session.scalars(select(RuleState))}
    for parsed in files:
        if not parsed.problems:
            for rule in parsed.rules:
                state = states.get(rule.id)
                if state is None:
                    state = RuleState(rule_id=rule.id, path=parsed.path, state={})
                    session.add(state)
                    states[rule.id] = state
                if state.good_hash != parsed.hash or state.path != parsed.path \
                        or state.problems:
                    state.path, state.good_hash, state.good_text = (
                        parsed.path, parsed.hash, parsed.text)
                    state.problems, state.updated_at = None, now
            continue
        # Broken file: report on its rules, and run their last good version.
        problems = [p.as_dict() for p in parsed.problems]
        known = [s for s in states.values() if s.path == parsed.path]
        for state in known:
            state.problems, state.updated_at = problems, now
        for text in {s.good_text for s in known if s.good_text}:
            for rule in parse_text(text, parsed.path, config).rules:
                if rule.id not in rules:
                    rule.fallback = True
                    rules[rule.id] = rule
                    log.warning("rules.fallback", rule=rule.id, path=parsed.path,
                                version=rule.hash)
        if not known:
            pseudo = f"archivo:{parsed.path}"[:100]
            state = states.get(pseudo) or RuleState(rule_id=pseudo, path=parsed.path,
                                                    state={})
            state.problems, state.updated_at = problems, now
            session.add(state)
