"""Log lines: JSON for machines (with the call sid as a field), and no early 'Running on'."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from phoneactors.call_log import CallLog
from phoneactors.cli.common import configure_logging
from phoneactors.logs import JsonFormatter, ServerNoise


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ServerNoise())
    logger = logging.getLogger(f"test-logs-{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_a_call_line_in_json_has_the_call_sid_as_a_field() -> None:
    logger, out = _logger(JsonFormatter())
    CallLog(logger, "CA123").warning("reply failed: %s", "timeout — «slow»")
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["call_sid"] == "CA123"
    assert entry["level"] == "WARNING"
    assert entry["message"] == "call CA123: reply failed: timeout — «slow»"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "«slow»" in line  # readable, not \\u-escaped


def test_a_json_line_carries_its_traceback_in_one_line() -> None:
    logger, out = _logger(JsonFormatter())
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("the call failed")
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert "call_sid" not in entry
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad frame" in entry["exception"]


def test_hypercorns_early_running_on_line_is_dropped() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ServerNoise())
    hypercorn = logging.getLogger("hypercorn.error")
    hypercorn.addHandler(handler)
    try:
        hypercorn.warning("Running on %s (CTRL + C to quit)", "http://127.0.0.1:8080")
        hypercorn.warning("Error in ASGI Framework")
    finally:
        hypercorn.removeHandler(handler)
    assert out.getvalue() == "Error in ASGI Framework\n"


def test_the_command_line_logs_json_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(logging.getLogger("faster_whisper"), "level", logging.NOTSET)
    configure_logging("INFO", "json")
    logging.getLogger("phoneactors.server").info("speech engines ready in %.2f s", 1.5)
    entry = json.loads(capsys.readouterr().err)
    assert entry["logger"] == "phoneactors.server"
    assert entry["message"] == "speech engines ready in 1.50 s"
