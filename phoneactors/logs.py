"""Log lines for people and for machines.

``phoneactors --log-format json`` writes one JSON object a line (for log shippers: Loki,
Elasticsearch, CloudWatch, …) with :class:`JsonFormatter`; the default is one readable line of
text. Either way, every line about a call carries its sid: in the message ("call CA…: …") and,
in JSON, as the field ``call_sid``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Final

__all__ = ["TEXT_FORMAT", "WORKER_TEXT_FORMAT", "JsonFormatter", "ServerNoise", "WorkerTag"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
WORKER_TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s[worker %(worker)d]: %(message)s"
"""The lines of one of several workers (``--workers``) say which worker wrote them."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601 with milliseconds), ``level``,
    ``logger``, ``message``; ``call_sid`` when the line is about a call; ``worker`` (its
    number) when the server runs several (``--workers``); ``exception`` (the
    formatted traceback) when there is one. Non-ASCII text is kept as it is."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_sid = getattr(record, "call_sid", None)
        if call_sid is not None:
            entry["call_sid"] = call_sid
        worker = getattr(record, "worker", None)
        if worker is not None:
            entry["worker"] = worker
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class ServerNoise(logging.Filter):
    """Drops hypercorn's "Running on …" line: it comes before the speech engines are loaded,
    so it would say the server is ready seconds before it is. phoneactors says so itself once
    it really is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "hypercorn.error" and str(record.msg).startswith("Running on"))


class WorkerTag(logging.Filter):
    """Marks every line with the worker (of ``--workers``) that wrote it."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True
