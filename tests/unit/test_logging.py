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
