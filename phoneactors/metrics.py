"""Prometheus metrics for a server: a :class:`~phoneactors.records.CallObserver`.

Each :class:`Metrics` has its own registry (nothing global), rendered in Prometheus' text
format by :meth:`Metrics.render` for ``GET /metrics``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from .engines.scheduling import WAIT_BUCKETS, InferenceSlots
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

__all__ = ["CONTENT_TYPE", "Metrics", "merge_exposition"]

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
            "on), by kind: no_words (a cough, a breath, noise, a filler), backchannel ('uh-huh') "
            "or unclear (a short sound the speech-to-text made no sense of).",
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

    def watch_inference(self, slots: InferenceSlots) -> None:
        """Also report the engines' inference slots: how long inferences waited for threads
        (a histogram by priority), how many wait now, and the threads in use."""
        self.registry.register(_InferenceCollector(slots))

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


class _InferenceCollector(Collector):
    """Reads an :class:`InferenceSlots` at each scrape (it keeps its own counts)."""

    def __init__(self, slots: InferenceSlots) -> None:
        self.slots = slots

    def collect(self) -> Iterator[Metric]:
        waits = HistogramMetricFamily(
            "phoneactors_inference_wait_seconds",
            "Time inferences waited for a CPU thread, by priority (speak: text-to-speech, "
            "listen: speech-to-text, prepare: loading).",
            labels=["priority"],
        )
        for priority, stats in self.slots.waits.items():
            bounds = [str(bound) for bound in WAIT_BUCKETS] + ["+Inf"]
            waits.add_metric(
                [priority.name.lower()],
                list(zip(bounds, (float(n) for n in stats.buckets), strict=True)),
                stats.total_s,
            )
        yield waits
        abandoned = CounterMetricFamily(
            "phoneactors_inference_abandoned",
            "Inferences cancelled while they waited for a CPU thread, by priority: work shed "
            "before it cost anything (a transcription of a pause the caller talked on past).",
            labels=["priority"],
        )
        for priority, count in self.slots.abandoned.items():
            abandoned.add_metric([priority.name.lower()], count)
        yield abandoned
        yield GaugeMetricFamily(
            "phoneactors_inference_waiting",
            "Inferences waiting for a CPU thread now.",
            value=self.slots.waiting,
        )
        yield GaugeMetricFamily(
            "phoneactors_inference_threads_in_use",
            "CPU threads inference is running on now (of phoneactors_inference_threads).",
            value=self.slots.in_use,
        )
        yield GaugeMetricFamily(
            "phoneactors_inference_threads",
            "CPU threads inference may use at once (--threads).",
            value=self.slots.total,
        )


def merge_exposition(texts: Sequence[str], *, kinds: Collection[str] | None = None) -> bytes:
    """Several processes' metrics as one (``--workers``): the samples of the same name and
    labels are summed (counters, histograms and our gauges all add up across workers), except
    the ``_created`` timestamps, of which the earliest is kept. ``kinds``: keep only families
    of these types (``{"counter", "histogram"}``: what a worker that ended leaves behind)."""
    types: dict[str, tuple[str, str]] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if kinds is not None and family.type not in kinds:
                continue
            types.setdefault(family.name, (family.type, family.documentation))
            merged = samples.setdefault(family.name, {})
            earliest = family.name.endswith("_created")
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in merged:
                    merged[key] = sample.value
                elif earliest:
                    merged[key] = min(merged[key], sample.value)
                else:
                    merged[key] += sample.value
    families = []
    for name, (kind, documentation) in types.items():
        family = Metric(name, documentation, kind)
        for (sample_name, labels), value in samples[name].items():
            family.add_sample(sample_name, dict(labels), value)
        families.append(family)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


class _Fixed(Collector):
    """Metric families already counted (by other processes)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
