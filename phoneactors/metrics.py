"""Prometheus metrics for a server: a :class:`~phoneactors.records.CallObserver`.

Each :class:`Metrics` has its own registry (nothing global), rendered in Prometheus' text
format by :meth:`Metrics.render` for ``GET /metrics``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .records import (
    BotSaid,
    CallEnded,
    CallerSaid,
    CallEvent,
    CallStarted,
    Failure,
    FalseInterruption,
    Interrupted,
    KeyPress,
    TurnTimed,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0)
_STAGES: Final = ("end_of_speech", "stt", "reply", "tts", "send")
_END_KINDS: Final = {
    "caller hung up": "caller_hung_up",
    "socket closed": "socket_closed",
    "conversation hung up": "conversation_hung_up",
    "server shutting down": "server_shutdown",
}


def _end_kind(reason: str) -> str:
    """A small, fixed set of label values (reasons carry free text)."""
    if reason in _END_KINDS:
        return _END_KINDS[reason]
    if reason.startswith("ProtocolError"):
        return "protocol_error"
    return "error"


class Metrics:
    """Counts what happens on calls; ``observe`` never blocks (counters in memory)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.active_calls = Gauge(
            "phoneactors_active_calls", "Calls in progress.", registry=registry
        )
        self.calls = Counter(
            "phoneactors_calls", "Calls ended, by how they ended.", ["end"], registry=registry
        )
        self.turns = Counter("phoneactors_turns", "Caller utterances answered.", registry=registry)
        self.barge_ins = Counter(
            "phoneactors_barge_ins", "Replies the caller talked over.", registry=registry
        )
        self.false_interruptions = Counter(
            "phoneactors_false_interruptions",
            "Caller sounds over a reply that were no interruption (the reply paused and played "
            "on), by kind: no_words (a cough, a breath, noise) or backchannel ('uh-huh').",
            ["kind"],
            registry=registry,
        )
        self.keys = Counter("phoneactors_dtmf", "Keys pressed.", registry=registry)
        self.errors = Counter(
            "phoneactors_errors",
            "Contained failures, by kind (reply, stt, tts, hook).",
            ["kind"],
            registry=registry,
        )
        self.voice_to_voice = Histogram(
            "phoneactors_voice_to_voice_seconds",
            "Caller's last voiced frame to the bot's first audio sent.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage = Histogram(
            "phoneactors_turn_stage_seconds",
            "Time per stage of a turn (end_of_speech, stt, reply, tts, send).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        match event:
            case CallStarted():
                self.active_calls.inc()
            case CallEnded(reason=reason):
                self.active_calls.dec()
                self.calls.labels(end=_end_kind(reason)).inc()
            case CallerSaid():
                self.turns.inc()
            case Interrupted():
                self.barge_ins.inc()
            case FalseInterruption(kind=kind):
                self.false_interruptions.labels(kind=kind.replace(" ", "_")).inc()
            case KeyPress():
                self.keys.inc()
            case Failure(kind=kind):
                self.errors.labels(kind=kind).inc()
            case TurnTimed(stages_ms=stages):
                total = stages.get("total")
                if total is not None:
                    self.voice_to_voice.observe(total / 1000)
                for stage in _STAGES:
                    value = stages.get(stage)
                    if value is not None:
                        self.stage.labels(stage=stage).observe(value / 1000)
            case BotSaid():
                pass

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
