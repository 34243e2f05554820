"""What one call logs and counts: its logger, which names the call on every line, and its
counters, read by the logs, the tests and ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CallLog", "CallStats", "worth_logging"]

_LOG_FIRST: Final = 5
"""Repeated per-call warnings (dropped frames, bad messages) are logged this many times, then
every hundredth time, so a flood cannot flood the log."""


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """A logger that prefixes every line with the call sid, and reports contained failures
    (:meth:`failed`) to ``on_failure`` as well, for the call records and metrics."""

    def __init__(
        self,
        logger: logging.Logger,
        call_sid: str,
        on_failure: Callable[[str, str], object] | None = None,
    ) -> None:
        super().__init__(logger, {"call_sid": call_sid})
        self.call_sid = call_sid
        self._on_failure = on_failure

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {"call_sid": self.call_sid, **kwargs.get("extra", {})}
        return f"call {self.call_sid}: {msg}", kwargs

    def failed(self, kind: str, message: str, *, exc_info: BaseException | None = None) -> None:
        """Log a failure that costs a turn, not the call (``kind``: stt, tts, reply, hook)."""
        self.error("%s failed: %s", kind, message, exc_info=exc_info)
        if self._on_failure is not None:
            self._on_failure(kind, message)


@dataclass
class CallStats:
    """Counters for one call; read by logs, tests and metrics."""

    frames_received: int = 0
    frames_dropped: int = 0
    bad_messages: int = 0
    dtmf_dropped: int = 0
    utterances: int = 0
    replies: int = 0
    barge_ins: int = 0
    false_interruptions: int = 0
    """Caller sounds over a reply that paused it, then let it play on."""
    judgements_dropped: int = 0
    """Judgements of the words at a pause the VAD actor was too far behind to take."""
    early_transcriptions_shed: int = 0
    """Transcriptions of a pause dropped because the caller talked on before they were done."""
    reply_errors: int = 0
    engine_errors: int = 0


def worth_logging(count: int) -> bool:
    return count <= _LOG_FIRST or count % 100 == 0
