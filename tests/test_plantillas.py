"""M9: the email templates. A broken template is reported by `saeko-sync rules validate`
with the template's file:line and a Spanish message (unknown variable or field, broken
syntax, a function or filter with the wrong number of arguments, a template no rule uses
yet); `saeko-sync plantillas prueba NOMBRE --entidad ID` renders one with the store's real
data (the record by its Podio item id), `plantillas lista` lists them with their variables.
Real subprocesses against a running sandbox, as an admin runs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from core.settings import PROJECT_ROOT
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from tests.test_cli import run_cli, write_env

RULE = "config/rules/m4-nps-trimestral.yaml"


def _config(tmp: Path) -> Path:
    config = tmp / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    (tmp / ".env").write_text(f"CONFIG_DIR={config}\n")
    return config


def _line_of(path: Path, text: str) -> int:
    return next(n for n, row in enumerate(path.read_text().splitlines(), 1) if text in row)


BROKEN = [
    # (what the template's line 3 says, the Spanish message)
    ("Hola {{ usuario.nombre }", "plantilla inválida: símbolo inesperado '}'"),
    ("Hola {{ usuarioo.nombre }}", 'variable desconocida "usuarioo"; ¿quisiste decir "usuario"?'),
    ("Hola {{ usuario.nombree }}", '"nombree"'),
    ("{{ enlace_prellenado(datos.formulario_nps) }}",
     'la función "enlace_prellenado" recibe entre 3 y 9 argumento(s), no 1'),
    ("{{ usuario.escuela.cliente.mrr | moneda(2) }}",
     'el filtro "moneda" recibe 0 argumento(s), no 1'),
    ("{{ usuario.nombre | mayusculas }}", 'filtro desconocido "mayusculas"'),
    ("{% if usuario.nombre %}Hola", "plantilla inválida: el bloque {% if %} no se cierra "
                                    "(falta {% elif %} o {% else %} o {% endif %} antes del "
                                    "final)"),
]


@pytest.mark.parametrize(("line", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_template_is_reported_with_its_file_and_line(
        tmp_path: Path, line: str, message: str) -> None:
    config = _config(tmp_path)
    template = config / "plantillas" / "encuesta-nps.txt"
    rows = template.read_text().splitlines()
    rows[2] = line
    template.write_text("\n".join(rows) + "\n")
    result = run_cli(["rules", "validate"], tmp_path)
    assert result.returncode == 1
    rule_line = _line_of(config / "rules" / "m4-nps-trimestral.yaml", "plantilla: encuesta-nps")
    (problem,) = [r for r in result.stdout.splitlines() if r.startswith("config/")]
    assert problem.startswith(f'{RULE}:{rule_line}: acción "gmail.enviar": "plantilla": '
                              "config/plantillas/encuesta-nps.txt:3: "), problem
    assert message in problem, problem
    assert "1 problema(s): corrige y vuelve a validar." in result.stdout


def test_a_template_no_rule_uses_is_checked_for_its_syntax(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (config / "plantillas" / "borrador.txt").write_text("Hola\n\n{{ usuario.nombre \n")
    (config / "plantillas" / "borrador-bueno.txt").write_text("Hola {{ quien }}\n")
    result = run_cli(["rules", "validate"], tmp_path)
    assert result.returncode == 1
    (problem,) = [r for r in result.stdout.splitlines() if r.startswith("config/")]
    assert re.match(r"config/plantillas/borrador\.txt:3: plantilla inválida: .*ninguna regla "
                    r"la usa todavía", problem), problem
    assert run_cli(["rules", "validate"], PROJECT_ROOT).stdout.strip() == \
        "Todas las reglas son válidas."


def test_preview_renders_a_template_with_real_data(sandbox: Sandbox, tmp_path: Path) -> None:
    write_env(sandbox, tmp_path)
    assert run_cli(["sync"], tmp_path).returncode == 0
    world = sandbox.world
    client_of = {s.key: s.client_key for s in world.schools}
    director = next(u for u in world.users if u.role == "Directivo")
    client = next(c for c in world.clients if c.key == client_of[director.school_key])
    item = podio_item_id("usuarios", director.key)
    html = tmp_path / "nps.html"
    result = run_cli(["plantillas", "prueba", "encuesta-nps", "--entidad", str(item),
                      "--html", str(html)], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Plantilla «encuesta-nps» con los datos de usuario #")
    assert f"(Podio {item}) «{director.name}», como la enviaría la regla m4-nps-trimestral" \
        in out
    assert f"Para: {director.email}\n" in out
    assert "Asunto: ¿Recomendaría Saeko? Su opinión de este trimestre\n" in out
    assert f"Hola {director.name}:" in out and client.name in out
    (url,) = re.findall(r"https://docs\.google\.com/forms/\S+", out)
    query = parse_qs(urlparse(url).query)
    assert query[f"entry.{int('4b9e1a07', 16)}"] == [director.email]
    assert query[f"entry.{int('73e2c5d1', 16)}"] == [client.name]
    assert f"HTML guardado en {html}" in out
    assert f"<strong>{client.name}</strong>" in html.read_text()
    assert "None" not in out
    # A record that does not exist, and a template no rule sends: a Spanish message.
    missing = run_cli(["plantillas", "prueba", "encuesta-nps", "--entidad", "999999999"],
                      tmp_path)
    assert missing.returncode == 1
    assert "no existe ningún(a) usuario «999999999»" in missing.stderr
    unknown = run_cli(["plantillas", "prueba", "encuesta-npss", "--entidad", str(item)],
                      tmp_path)
    assert unknown.returncode == 1
    assert 'ninguna regla usa la plantilla «encuesta-npss»; ¿quisiste decir "encuesta-nps"?' \
        in unknown.stderr.replace("\n", " ")

    listed = run_cli(["plantillas", "lista"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    at = lines.index("encuesta-nps (encuesta-nps.html, encuesta-nps.txt) — usada por: "
                     "m4-nps-trimestral")
    assert "usuario.escuela.cliente.nombre" in lines[at + 1]
    assert "datos.formulario_nps" in lines[at + 1]
    assert lines[at + 2] == "    funciones: enlace_prellenado"


def test_a_rules_inline_text_is_checked_the_same_way(tmp_path: Path) -> None:
    """A task or email text written in the rule file (not in config/plantillas/) gets the
    same checks, with the rule file's line."""
    config = _config(tmp_path)
    rule = config / "rules" / "m4-nps-trimestral.yaml"
    text = rule.read_text()
    rule.write_text(text.replace('asunto: "¿Recomendaría Saeko? Su opinión de este trimestre"',
                                 'asunto: "NPS {{ periodo(hoy) }} de {{ usuario.nombre }}"'))
    result = run_cli(["rules", "validate"], tmp_path)
    assert result.returncode == 1
    line = _line_of(rule, "asunto:")
    (problem,) = [r for r in result.stdout.splitlines() if r.startswith("config/")]
    assert problem == (f'{RULE}:{line}: acción "gmail.enviar": "asunto": la función "periodo" '
                       "recibe 2 argumento(s), no 1"), problem
