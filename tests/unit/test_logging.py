"""The log pipeline: one redaction filter on the root handler, console or one JSON object per line."""

from __future__ import annotations

import json
import logging

import pytest

from app.core.logging import configure_logging


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_format_is_one_object_per_line(restore_root_logging, capsys) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("app.test").info("session.created id=%s", "abc")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "session.created id=abc"
    assert entry["level"] == "INFO" and entry["logger"] == "app.test"


def test_proxy_credentials_and_keys_are_redacted_in_every_record(restore_root_logging, capsys) -> None:
    configure_logging("INFO", "console", secrets=("the-api-key-123",))
    log = logging.getLogger("app.test")
    log.info("launch proxy=%s", "http://agent:s3cret@proxy.example:3128")
    log.warning("header X-API-Key=%s", "the-api-key-123")
    try:
        raise RuntimeError("connect failed via http://agent:s3cret@proxy.example:3128")
    except RuntimeError:
        log.exception("browser.launch_failed")
    err = capsys.readouterr().err
    assert "s3cret" not in err and "the-api-key-123" not in err
    assert "http://***:***@proxy.example:3128" in err
    assert "RuntimeError" in err  # the operator still gets the traceback


def test_level_is_applied(restore_root_logging, capsys) -> None:
    configure_logging("WARNING", "console")
    logging.getLogger("app.test").info("hidden")
    assert "hidden" not in capsys.readouterr().err


def test_event_fields_are_keys_in_json_and_key_value_on_the_console(restore_root_logging, capsys) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("app.test").info("session.closed", extra={"session_id": "s-1", "reason": "idle"})
    entry = json.loads(capsys.readouterr().err.strip())
    assert (entry["message"], entry["session_id"], entry["reason"]) == ("session.closed", "s-1", "idle")
    configure_logging("INFO", "console")
    logging.getLogger("app.test").info("session.closed", extra={"session_id": "s-1", "reason": "idle"})
    assert capsys.readouterr().err.rstrip().endswith("session.closed session_id=s-1 reason=idle")


def test_secrets_in_event_fields_are_redacted_too(restore_root_logging, capsys) -> None:
    configure_logging("INFO", "json", secrets=("the-api-key-123",))
    logging.getLogger("app.test").info(
        "request",
        extra={
            "path": "/tiktok/session/x/cdp?token=s3ss10n-t0ken",
            "proxy": "http://u:pw-9@p:1",
            "key": "the-api-key-123",
        },
    )
    err = capsys.readouterr().err
    assert "s3ss10n-t0ken" not in err and "pw-9" not in err and "the-api-key-123" not in err
    entry = json.loads(err)
    assert entry["path"] == "/tiktok/session/x/cdp?token=***"


def test_records_written_during_a_request_carry_its_id(restore_root_logging, capsys) -> None:
    from app.core.logging import current_request_id

    configure_logging("INFO", "json")
    reset = current_request_id.set("req-42")
    try:
        logging.getLogger("app.test").info("session.created", extra={"session_id": "s-2"})
    finally:
        current_request_id.reset(reset)
    assert json.loads(capsys.readouterr().err)["request_id"] == "req-42"
