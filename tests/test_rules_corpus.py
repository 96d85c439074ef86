"""The corpus of broken rule files: each one names, in its first line, the line and the
message validation must report (``# espera: LINE: fragment``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, load_settings
from rules import api
from rules.config import RulesConfig
from rules.ruleset import load_rules, validate_path

CORPUS = Path(__file__).parent / "rules_broken"
EXPECT = re.compile(r"^# espera: (\d+): (.+)$")
VALID_RULE = """\
id: valida
nombre: Una regla válida junto a las rotas
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
    a: Escalado
condiciones:
  - ticket.jira is none
acciones:
  - podio.comentario:
      texto: "Escalado: {{ ticket.titulo }}"
"""


def _config() -> RulesConfig:
    return RulesConfig.from_settings(load_settings(config_dir=PROJECT_ROOT / "config"))


def _cases() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_is_big_enough() -> None:
    assert len(_cases()) >= 25


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_each_broken_file_reports_file_line_and_message(path: Path) -> None:
    expected = EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert expected, f"{path.name}: first line must be '# espera: LINE: fragment'"
    line, fragment = int(expected.group(1)), expected.group(2)
    problems = validate_path(path, _config())
    rendered = [str(p) for p in problems]
    assert any(p.line == line and fragment in p.message for p in problems), rendered
    assert all(r.startswith(f"{path}:") or r.startswith("tests/rules_broken/") for r in rendered)
    assert api.exit_code(problems) == 1


def test_broken_files_are_not_loaded_and_valid_ones_are(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(CORPUS, folder)
    (folder / "valida.yaml").write_text(VALID_RULE, encoding="utf-8")
    ruleset = load_rules(_config(), None, folder)
    assert list(ruleset.rules) == ["valida"]
    broken = {Path(p.path).name for p in ruleset.problems}
    assert broken == {p.name for p in _cases()}


def test_a_valid_folder_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "valida.yaml").write_text(VALID_RULE, encoding="utf-8")
    problems = validate_path(tmp_path, _config())
    assert problems == [] and api.exit_code(problems) == 0
    assert api.format_problems(problems) == "Todas las reglas son válidas."


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID_RULE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# copia\n" + VALID_RULE, encoding="utf-8")
    problems = validate_path(tmp_path, _config())
    assert len(problems) == 1
    assert problems[0].line == 2 and "ya lo usa" in problems[0].message
    assert "a.yaml:1" in problems[0].message
