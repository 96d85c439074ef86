"""The documented failure modes of the CLI, as an operator meets them (docs/operacion.md,
«Cuando algo falla»): each ends with exit code ≠ 0 and one Spanish line that names what to
fix — never a traceback — and a tool that cannot be reached is said within seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import Sandbox
from tests.conftest import _PG_SKIP

CLI = [sys.executable, "-m", "saeko_sync"]
ROOT = Path(__file__).resolve().parent.parent
# A port nothing listens on (discard): connections to it are refused at once.
REFUSED = "http://127.0.0.1:9"
# A name that never resolves (RFC 2606 reserves .invalid).
NO_SUCH_HOST = "http://podio.saeko.invalid"
FAST_SECONDS = 15.0  # issue 16: an unreachable URL is said in under 15 s
PODIO = {"PODIO_CLIENT_ID": "saeko-sync", "PODIO_CLIENT_SECRET": "secreto",
         "PODIO_USERNAME": "integracion@saeko.test", "PODIO_PASSWORD": "clave",
         "PODIO_APP_CLIENTES_ID": "1001", "PODIO_APP_ESCUELAS_ID": "1002",
         "PODIO_APP_USUARIOS_ID": "1003", "PODIO_APP_TICKETS_ID": "1004",
         "PODIO_APP_CONTRATOS_ID": "1005", "PODIO_APP_FACTURAS_ID": "1006"}


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
        columns: int = 80) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI with only ``env`` (and cwd's .env) as settings; (result, seconds)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PODIO_", "JIRA_", "GOOGLE_", "DATABASE_", "SERVE_"))}
    base |= {"PYTHONPATH": str(ROOT), "COLUMNS": str(columns),
             "DATABASE_URL": f"sqlite:///{cwd}/cli.db", **(env or {})}
    started = time.monotonic()
    result = subprocess.run(CLI + args, cwd=cwd, env=base, capture_output=True, text=True,
                            timeout=timeout, check=False)
    return result, time.monotonic() - started


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_said(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit ≠ 0, no traceback anywhere, and every expected text in the output."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode != 0, output
    flat = one_line(output)
    for text in expected:
        assert text in flat, output
    return flat


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process (here: this one) is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- tools that cannot be reached: fast, with the URL and the setting ---------------------

@pytest.mark.parametrize("url", [REFUSED, NO_SUCH_HOST])
def test_sync_against_an_unreachable_podio_fails_in_seconds(url: str, tmp_path: Path) -> None:
    result, seconds = cli(["sync", "--source", "podio"], tmp_path,
                          {**PODIO, "PODIO_API_URL": url})
    assert_said(result, f"No se pudo conectar con Podio en {url}", "PODIO_API_URL")
    assert seconds < FAST_SECONDS, f"{seconds:.1f} s"
    # Once, for the tool: its other five apps are not tried (and failed) one by one.
    assert result.stderr.count('"sync.stream.failed"') == 1, result.stderr
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert one_line(" ".join(said)).count("No se pudo conectar") == 1, result.stderr


def test_doctor_names_the_unreachable_podio_url_in_seconds(tmp_path: Path) -> None:
    result, seconds = cli(["doctor"], tmp_path, {**PODIO, "PODIO_API_URL": NO_SUCH_HOST},
                          columns=200)
    assert_said(result, NO_SUCH_HOST, "no existe", "PODIO_API_URL")
    assert seconds < FAST_SECONDS, f"{seconds:.1f} s"


def test_a_typo_in_the_jira_domain_is_said_in_seconds(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env(), "JIRA_URL": "https://saeko.atlasian.invalid"}
    result, seconds = cli(["sync", "--source", "jira"], tmp_path, env)
    flat = assert_said(result, "No se pudo conectar con Jira en https://saeko.atlasian.invalid",
                       "no existe", "JIRA_URL")
    assert "urllib3" not in flat and "HTTPSConnectionPool" not in flat, flat
    assert seconds < FAST_SECONDS, f"{seconds:.1f} s"


def test_a_wrong_jira_path_is_a_wrong_url_not_a_permission(sandbox: Sandbox,
                                                           tmp_path: Path) -> None:
    env = {**sandbox.env(), "JIRA_URL": sandbox.url("jira") + "-no"}
    result, _seconds = cli(["sync", "--source", "jira"], tmp_path, env)
    flat = assert_said(result, "la URL es incorrecta o no se encontró", "JIRA_URL")
    assert "permiso" not in flat, flat


def test_a_podio_that_answers_is_still_retried(sandbox: Sandbox, tmp_path: Path) -> None:
    """Fail-fast is for a host that never answered: 5xx on a reachable Podio is retried."""
    sandbox.faults.add(kind="status", status=503, tool="podio", path="/filter", count=2)
    result, _seconds = cli(["sync", "--source", "podio"], tmp_path,
                           {**sandbox.env(), "PODIO_RETRY_BASE_SECONDS": "0.01"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout, result.stdout


# --- the database -------------------------------------------------------------------------

BAD_DATABASES = [
    ("postgresql+psycopg://saeko:s3creta@127.0.0.1:9/saeko", "rechazó la conexión"),
    ("postgresql+psycopg://saeko:s3creta@db.saeko.invalid:5432/saeko", "no se resuelve"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/no_existe_saeko", "no existe"),
    ("esto-no-es-una-url", "no es una URL de base de datos"),
    ("postgres://saeko@127.0.0.1/saeko", "postgresql+psycopg://"),
]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["sync"], ["run"]])
@pytest.mark.parametrize(("url", "cause"), BAD_DATABASES)
def test_a_bad_database_url_is_one_line_naming_database_url(command: list[str], url: str,
                                                            cause: str, tmp_path: Path) -> None:
    if "no_existe" in url and _PG_SKIP:
        pytest.skip(_PG_SKIP)
    result, _seconds = cli(command, tmp_path, {"DATABASE_URL": url})
    assert_said(result, "DATABASE_URL", cause)
    assert "s3creta" not in result.stderr  # the password is not shown
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_doctor_says_the_same_of_a_bad_database(tmp_path: Path) -> None:
    result, _seconds = cli(["doctor"], tmp_path, {"DATABASE_URL": BAD_DATABASES[0][0]},
                           columns=250)
    assert_said(result, "No se pudo usar la base de datos", "rechazó la conexión",
                "Revisa DATABASE_URL")


def test_a_database_without_tables_says_db_upgrade(tmp_path: Path) -> None:
    result, _seconds = cli(["salud"], tmp_path, {"DATABASE_URL": f"sqlite:///{tmp_path}/v.db"})
    assert_said(result, "aún no tiene las tablas", "saeko-sync db upgrade")


def test_rules_trace_on_an_empty_store_points_at_the_demo_database(tmp_path: Path) -> None:
    """Right after `make demo`, `rules trace` reads the .env's store, not the demo's."""
    demo_db = tmp_path / "var" / "demo" / "saeko-demo.db"
    demo_db.parent.mkdir(parents=True)
    demo_db.touch()
    result, _seconds = cli(["rules", "trace", "t1-autocompletar-ticket"], tmp_path)
    assert_said(result, "no tiene ninguna ejecución", "saeko-sync run",
                f"DATABASE_URL=sqlite:///{demo_db}")


# --- ports ----------------------------------------------------------------------------------

def test_sandbox_on_a_busy_port_names_the_port(busy_port: int, tmp_path: Path) -> None:
    result, _seconds = cli(["sandbox", "--port", str(busy_port)], tmp_path)
    assert_said(result, f"El puerto {busy_port} de 127.0.0.1 ya está en uso", "--port")
    assert "Sandbox en" not in result.stdout


def test_serve_on_a_busy_port_fails_before_anything_runs(busy_port: int,
                                                         tmp_path: Path) -> None:
    result, _seconds = cli(["serve", "--port", str(busy_port)], tmp_path, PODIO)
    assert_said(result, f"El puerto {busy_port} de 127.0.0.1 ya está en uso", "SERVE_PORT")
    assert "saeko-sync serve en" not in result.stdout + result.stderr
    assert "sync.stream" not in result.stderr  # no cycle ran
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_demo_serve_on_a_busy_port_says_so_before_the_demo(busy_port: int,
                                                           tmp_path: Path) -> None:
    result, seconds = cli(["demo", "--serve", "--port", str(busy_port), "--folder",
                           str(tmp_path / "demo")], tmp_path)
    assert_said(result, f"El puerto {busy_port} de 127.0.0.1 ya está en uso", "--port")
    assert "Sandbox en" not in result.stdout and seconds < 15  # before the world is made


# --- readable at 80 columns --------------------------------------------------------------

def test_the_sync_table_fits_80_columns_and_keeps_the_setting_whole(sandbox: Sandbox,
                                                                    tmp_path: Path) -> None:
    env = {k: v for k, v in sandbox.env().items() if k != "PODIO_APP_SEGUIMIENTOS_ID"}
    env["PODIO_APP_SEGUIMIENTOS_ID"] = ""
    result, _seconds = cli(["sync", "--source", "podio"], tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    row = next(line for line in lines if "podio/tickets" in line)
    assert row.split()[-1] == "✓"  # one line per stream
    assert "PODIO_APP_SEGUIMIENTOS_ID" in result.stdout  # never cut
    assert "✗ podio/seguimientos: PODIO_APP_SEGUIMIENTOS_ID no está definido" in one_line(
        result.stdout)
