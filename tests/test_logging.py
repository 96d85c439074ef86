"""Rendered log lines never show a secret, including tracebacks logged with log.exception."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import structlog

from core.logging import configure_logging

PASSWORD = "s3cr3t-Pa55word"
TOKEN = "tok-abcdef0123456789"


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def _fail_with_secrets() -> None:
    """An httpx error whose URL carries a token, raised from one naming a password."""
    request = httpx.Request("GET", f"https://api.example.test/item/1?access_token={TOKEN}")
    try:
        raise httpx.ConnectError(f"connection refused for {request.url}", request=request)
    except httpx.ConnectError as exc:
        raise RuntimeError(f"login as integracion failed (password={PASSWORD})") from exc


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_is_redacted(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", fmt, secrets=[PASSWORD])
    log = structlog.get_logger("test")
    try:
        _fail_with_secrets()
    except RuntimeError:
        log.exception("sync.crashed", url=f"https://u:{PASSWORD}@db.example.test/x")
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConnectError" in err and "sync.crashed" in err
    assert "access_token=***" in err
    assert PASSWORD not in err and TOKEN not in err


def test_secrets_in_free_text_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = structlog.get_logger("test")
    log.warning("podio.retry", error=f"POST /oauth/token refresh_token={TOKEN}&client_id=7",
                header=f"Authorization: OAuth2 {TOKEN}", body={"password": PASSWORD})
    err = capsys.readouterr().err
    assert TOKEN not in err and PASSWORD not in err
    assert "client_id=7" in err  # what is not secret stays readable
