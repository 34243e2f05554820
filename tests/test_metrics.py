"""Prometheus metrics follow the calls."""

from __future__ import annotations

from trio.testing import MockClock

from phoneactors.conversation import Parrot
from phoneactors.metrics import Metrics
from phoneactors.testing import FakeSpeech, open_call, tone


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_metrics_count_calls_turns_barge_ins_and_latency(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    metrics = Metrics()
    async with open_call(Parrot, speech.engines(), speech=speech, observers=[metrics]) as fake:
        await fake.wait_for(lambda: bool(fake.played))
        assert sample(metrics, "phoneactors_active_calls") == 1
        await fake.play(tone(0.4), wait=False)  # over the greeting
        await fake.wait_for(lambda: bool(fake.clears))
        await fake.silence(1)
        await fake.say("hello")
        await fake.wait_for_bot_to_finish()
    assert sample(metrics, "phoneactors_active_calls") == 0
    assert sample(metrics, "phoneactors_calls_total", end="caller_hung_up") == 1
    assert sample(metrics, "phoneactors_turns_total") == 1
    assert sample(metrics, "phoneactors_barge_ins_total") == 1
    assert sample(metrics, "phoneactors_voice_to_voice_seconds_count") == 1
    assert sample(metrics, "phoneactors_turn_stage_seconds_count", stage="tts") == 1
    text = metrics.render().decode()
    assert "# TYPE phoneactors_voice_to_voice_seconds histogram" in text


async def test_failures_are_counted_by_kind(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    metrics = Metrics()
    speech.stt.fail = True
    async with open_call(Parrot, speech.engines(), speech=speech, observers=[metrics]) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("anything")
        await fake.wait_for_bot_to_finish()
    assert sample(metrics, "phoneactors_errors_total", kind="stt") == 1
