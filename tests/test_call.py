"""The call runtime under MockClock: every actor, barge-in, pacing, marks, hang-up, failures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from phoneactors import twilio
from phoneactors.audio import PCM
from phoneactors.call import CallSettings
from phoneactors.conversation import Conversation, Interruption, Parrot, ReplyText
from phoneactors.errors import ConfigurationError
from phoneactors.segmenter import SegmenterSettings
from phoneactors.sentences import split_sentences
from phoneactors.testing import (
    FakeSpeech,
    FakeSpeechToText,
    FakeTextToSpeech,
    load_caller_voice,
    open_call,
    tone,
)
from phoneactors.timing import TurnTiming

# Every test here takes ``autojump_clock``: trio's MockClock(autojump_threshold=0), so no real
# time passes and every timing below is exact.

LONG = (
    "This is the first sentence of a long answer. "
    "Here comes the second sentence which has quite a few more words in it. "
    "And finally a third one."
)


class Recorder(Conversation):
    """Replies with a fixed text and records every hook."""

    greeting = None
    text = LONG

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.interruptions: list[Interruption] = []
        self.ended: list[str] = []
        self.started = 0

    async def on_start(self) -> None:
        self.started += 1

    async def reply(self, text: str) -> str:
        self.heard.append(text)
        return self.text

    async def on_interrupted(self, interruption: Interruption) -> None:
        self.interruptions.append(interruption)

    async def on_end(self, reason: str) -> None:
        self.ended.append(reason)


def single(cls: type[Conversation]) -> tuple[list[Conversation], type[Conversation]]:
    """A factory that remembers the instance it made."""
    made: list[Conversation] = []

    def make() -> Conversation:
        made.append(cls())
        return made[-1]

    return made, make  # type: ignore[return-value]


async def test_greeting_then_a_turn(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    async with open_call(Parrot, speech.engines(), speech=speech) as twilio_:
        await twilio_.wait_for_bot_to_finish()
        assert speech.spoken == ["Hi!", "Say something and I will repeat it."]
        await twilio_.say("hello there")
        await twilio_.wait_for_bot_to_finish()
        assert speech.spoken[-1] == 'You said: "hello there"'
    assert twilio_.result is not None
    assert twilio_.result.reason == "caller hung up"
    assert twilio_.clears == []
    # Everything the bot synthesized was played in full.
    expected = sum(speech.tts.duration(t) for t in speech.spoken)
    assert len(twilio_.bot_audio) / 8000 == pytest.approx(expected, abs=0.02)


async def test_call_facts_reach_the_conversation(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    made, make = single(Recorder)
    async with open_call(
        make, speech.engines(), speech=speech, custom_parameters={"caller": "+15551234", "x": "y"}
    ) as fake:
        await fake.silence(0.1)
        conversation = made[0]
        assert conversation.call.caller == "+15551234"
        assert conversation.call.custom_parameters["x"] == "y"
        assert conversation.call.call_sid == fake.call_sid
        assert conversation.call.stream_sid == fake.stream_sid
    assert made[0].started == 1  # type: ignore[attr-defined]


async def test_barge_in_cancels_within_a_frame_and_sends_nothing_after_clear(
    autojump_clock: MockClock,
    speech: FakeSpeech,
) -> None:
    made, make = single(Recorder)
    settings = CallSettings()
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("tell me something long")
        await fake.wait_for(lambda: fake.played and fake.played[-1].end > trio.current_time() - 1)
        await trio.sleep(3.5)  # well into the second sentence
        # The interruption's first frame goes out at the next 20 ms tick.
        began = trio.current_time()
        await fake.play(speech.caller_audio("stop right there please"), wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        decided = began + settings.segmenter.min_speech_ms / 1000
        assert fake.clears[0] - decided <= 0.02 + 0.02  # one frame, plus the tick alignment
        await fake.silence(1.0)
        assert fake.stale_audio_after_clear() == 0
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    [interruption] = conversation.interruptions
    played = len(fake.bot_audio) / 8000
    # Heard text covers the first sentence and part of the second, matching what played.
    first, _second, third = (s.strip() for s in LONG.split(". "))
    assert interruption.heard.startswith(first)
    assert third.rstrip(".") in interruption.unheard
    heard_chars = len(interruption.heard)
    assert heard_chars / len(LONG) == pytest.approx(played / speech.tts.duration(LONG), abs=0.1)
    assert (interruption.heard + " " + interruption.unheard).split() == LONG.split()


async def test_barge_in_while_thinking_cancels_the_reply(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    cancelled = trio.Event()

    class Slow(Recorder):
        async def reply(self, text: str) -> str:
            try:
                await trio.sleep(10)
            except trio.Cancelled:
                cancelled.set()
                raise
            return "too late"

    made, make = single(Slow)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        await fake.say("a question")
        await trio.sleep(1.0)  # the reply is thinking now
        await fake.say("never mind", wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        assert not cancelled.is_set()  # paused until the words say what the sound was
        await fake.wait_for(cancelled.is_set)
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    assert conversation.interruptions == [Interruption(heard="", unheard="")]
    assert "too late" not in speech.spoken


async def test_pacing_keeps_the_lead_within_bounds(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    settings = CallSettings(playback_lead=0.3, chunk_ms=100)
    _made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("go")
        await fake.wait_for_bot_to_finish()
    assert fake.max_buffered <= 0.3 + 1e-6
    assert fake.max_buffered >= 0.2  # it does run ahead, so playback never starves
    # Playback was continuous: no gaps between chunks within the reply.
    gaps = [b.start - a.end for a, b in zip(fake.played, fake.played[1:], strict=False)]
    assert max(gaps[1:]) < 0.03


@pytest.mark.parametrize(
    ("padded", "after_first_sentence"),
    # With padded TTS audio, trimmed: 20 ms of lead-in and 200 ms of pause are sent as well.
    [(False, 0.25), (True, 0.02 + 0.2 + 0.3)],
    ids=["plain", "silence-trimmed"],
)
async def test_heard_text_follows_the_marks(
    autojump_clock: MockClock, padded: bool, after_first_sentence: float
) -> None:
    """Marks and heard text count the audio actually sent (after trimming, when trimmed)."""
    speech = FakeSpeech()
    if padded:
        speech.tts = PaddedTts()
    made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        await fake.say("talk")
        await fake.wait_for(lambda: bool(fake.played))
        start = fake.played[0].start
        first_sentence = "This is the first sentence of a long answer."
        await trio.sleep_until(start + speech.tts.duration(first_sentence) + after_first_sentence)
        await fake.play(speech.caller_audio("stop"), wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        await fake.silence(1.0)  # the words end the reply once the turn is over
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    [interruption] = conversation.interruptions
    assert interruption.heard.startswith(first_sentence)
    assert interruption.heard != first_sentence  # some words of sentence two
    assert interruption.unheard.endswith("And finally a third one.")


async def test_dtmf_reaches_the_conversation_and_interrupts(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Menu(Conversation):
        greeting = "Press one for sales or two for support. " * 3

        def __init__(self) -> None:
            self.digits: list[str] = []

        async def on_dtmf(self, digit: str) -> ReplyText:  # type: ignore[override]
            self.digits.append(digit)
            return {"1": "Sales.", "2": "Support."}.get(digit, "Sorry, that is not an option.")

    made, make = single(Menu)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        await trio.sleep(1.0)
        await fake.press("2")
        await fake.wait_for(lambda: bool(fake.clears))
        await fake.wait_for_bot_to_finish()
    assert made[0].digits == ["2"]  # type: ignore[attr-defined]
    assert speech.spoken[-1] == "Support."


async def test_a_key_press_is_awaited_until_it_is_sent_and_never_hangs_on_a_closed_call(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Keys(Recorder):
        def __init__(self) -> None:
            self.digits: list[str] = []

        async def on_dtmf(self, digit: str) -> ReplyText:  # type: ignore[override]
            self.digits.append(digit)
            if digit == "#":
                self.hang_up()
            return None

    made, make = single(Keys)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        sent = fake.caller_frames_sent
        await fake.press("7")
        assert fake.caller_frames_sent - sent <= 1  # it went before the next frame
        await fake.wait_for(lambda: made[0].digits == ["7"])  # type: ignore[attr-defined]
        await fake.press("#")
        await fake.closed.wait()
        with trio.fail_after(1):
            await fake.press("1")  # nobody is listening: returns instead of waiting for ever


async def test_hang_up_waits_for_the_last_words_to_play(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Goodbye(Recorder):
        async def reply(self, text: str) -> str:
            self.hang_up()
            return "Goodbye, and thanks for calling."

    made, make = single(Goodbye)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        await fake.say("bye")
        await fake.closed.wait()
        closed_at = trio.current_time()
    assert fake.played[-1].end <= closed_at
    played = len(fake.bot_audio) / 8000
    assert played == pytest.approx(
        speech.tts.duration("Goodbye, and thanks for calling."), abs=0.01
    )
    assert fake.result is not None
    assert fake.result.reason == "conversation hung up"
    assert made[0].ended == ["conversation hung up"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("failure", ["raises", "times out", "wrong type", "bad chunk"])
async def test_a_failing_reply_is_apologised_for_and_the_call_goes_on(
    autojump_clock: MockClock, speech: FakeSpeech, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile(Conversation):
        apology = "Sorry about that."
        turns = 0

        def reply(self, text: str) -> AsyncIterator[str]:  # type: ignore[override]
            self.turns += 1
            return self.chunks(self.turns == 1)

        async def chunks(self, fail: bool) -> AsyncIterator[str]:
            if fail and failure == "raises":
                raise ValueError("boom")
            if fail and failure == "times out":
                await trio.sleep(100)
            if fail and failure == "bad chunk":
                yield 42  # type: ignore[misc]
            yield "Fine."

    class WrongType(Fragile):
        def reply(self, text: str) -> AsyncIterator[str]:  # type: ignore[override]
            self.turns += 1
            if self.turns == 1:
                return 42  # type: ignore[return-value]
            return self.chunks(False)

    settings = CallSettings(reply_timeout=5)
    cls = WrongType if failure == "wrong type" else Fragile
    caplog.set_level(logging.ERROR, logger="phoneactors")
    async with open_call(cls, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("first")
        await fake.wait_for_bot_to_finish()
        assert speech.spoken == ["Sorry about that."]
        await fake.say("second")
        await fake.wait_for_bot_to_finish()
        assert speech.spoken == ["Sorry about that.", "Fine."]
    assert fake.result is not None
    assert fake.result.stats.reply_errors == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert fake.call_sid in errors[0]


async def test_streaming_reply_speaks_the_first_sentence_before_the_rest_exists(
    autojump_clock: MockClock,
    speech: FakeSpeech,
) -> None:
    progress: list[tuple[str, float]] = []

    class Streamer(Conversation):
        async def reply(self, text: str) -> AsyncIterator[str]:  # type: ignore[override]
            for token in ["Hello", " there.", " Let", " me", " think", " about", " that."]:
                await trio.sleep(0.5)
                progress.append((token, trio.current_time()))
                yield token

    async with open_call(Streamer, speech.engines(), speech=speech) as fake:
        await fake.say("hi")
        await fake.wait_for_bot_to_finish(quiet=3.0)
    assert speech.spoken == ["Hello there.", "Let me think about that."]
    last_token_at = progress[-1][1]
    assert fake.played[0].start < last_token_at - 1.5


@pytest.mark.parametrize("mode", ["fails", "hangs"])
async def test_stt_failure_costs_one_turn(
    autojump_clock: MockClock, speech: FakeSpeech, mode: str
) -> None:
    settings = CallSettings(stt_timeout=2)
    async with open_call(Parrot, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.wait_for_bot_to_finish()
        if mode == "fails":
            speech.stt.fail = True
        else:
            speech.stt.delay = 100
        await fake.say("lost words")
        await fake.wait_for_bot_to_finish()
        assert " ".join(speech.spoken[-2:]) == Parrot.apology
        speech.stt.fail = False
        speech.stt.delay = 0.1
        await fake.say("found words")
        await fake.wait_for_bot_to_finish()
        assert speech.spoken[-1] == 'You said: "found words"'
    assert fake.result is not None
    assert fake.result.stats.engine_errors == 1


async def test_tts_failure_costs_one_turn(
    autojump_clock: MockClock, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_call(Parrot, speech.engines(), speech=speech) as fake:
        await fake.wait_for_bot_to_finish()
        speech.tts.fail = True
        await fake.say("anything")
        await fake.silence(3)
        speech.tts.fail = False
        await fake.say("again")
        await fake.wait_for_bot_to_finish()
        assert speech.spoken[-1] == 'You said: "again"'
    assert any("tts failed" in r.getMessage() for r in caplog.records)


async def test_socket_dropped_mid_reply_ends_the_call_cleanly(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech) as fake:
        await fake.say("talk to me")
        await fake.wait_for(lambda: bool(fake.played))
        await fake.drop()  # no stop: the network just went away
    assert fake.result is not None
    assert fake.result.reason == "socket closed"
    assert made[0].ended == ["socket closed"]  # type: ignore[attr-defined]


async def test_no_start_message_ends_the_call(
    autojump_clock: MockClock,
) -> None:
    from phoneactors.call import run_call
    from phoneactors.testing import memory_socket_pair

    server, client = memory_socket_pair()
    speech = FakeSpeech()
    await client.send(twilio.encode_inbound(twilio.Connected(protocol="Call", version="1.0.0")))
    result = await run_call(server, Parrot, speech.engines(), CallSettings(start_timeout=5))
    assert result.reason == "no start message within 5 s"
    assert server.closed


async def test_malformed_messages_are_skipped_then_end_the_call(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    settings = CallSettings(max_bad_messages=3)
    async with open_call(Parrot, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.socket.send("{not json")
        await fake.socket.send(f'{{"event":"media","streamSid":"{fake.stream_sid}"}}')
        await fake.silence(0.1)
        assert not fake.closed.is_set()
        await fake.socket.send(b"\xff\xfe")
        await fake.socket.send("[]")
        await fake.closed.wait()
    assert fake.result is not None
    assert fake.result.reason.startswith("ProtocolError: too many malformed messages")


async def test_a_crashing_on_end_and_on_interrupted_are_contained(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Clumsy(Recorder):
        async def on_interrupted(self, interruption: Interruption) -> None:
            raise RuntimeError("oops")

        async def on_end(self, reason: str) -> None:
            raise RuntimeError("oops again")

    async with open_call(Clumsy, speech.engines(), speech=speech) as fake:
        await fake.say("talk")
        await fake.wait_for(lambda: bool(fake.played))
        await fake.say("stop", wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        await fake.wait_for_bot_to_finish()
    assert fake.result is not None
    assert fake.result.reason == "caller hung up"


async def test_turn_timing_is_reported_and_early_transcription_hides_stt(
    autojump_clock: MockClock, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    timings: list[TurnTiming] = []

    class Timed(Parrot):
        async def on_turn_timing(self, timing: TurnTiming) -> None:
            timings.append(timing)

    caplog.set_level(logging.INFO, logger="phoneactors")
    settings = CallSettings(segmenter=SegmenterSettings(end_silence_ms=500, pause_ms=200))
    speech.stt.delay = 0.25  # finishes 50 ms before the end-of-speech wait does
    async with open_call(Timed, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("what time is it")
        await fake.wait_for_bot_to_finish()
    [timing] = timings
    stages = timing.stages_ms()
    assert stages["end_of_speech"] == pytest.approx(500, abs=1)
    assert stages["stt"] == 0  # transcribed during the end-of-speech wait
    assert stages["tts"] == pytest.approx(speech.tts.delay * 1000, abs=1)
    assert stages["total"] == pytest.approx(500 + speech.tts.delay * 1000, abs=1)
    assert speech.stt.calls == 1  # the final utterance reused the early transcript
    lines = [r.getMessage() for r in caplog.records if "turn: total=" in r.getMessage()]
    assert len(lines) == 1
    assert fake.call_sid in lines[0]


@pytest.mark.parametrize(
    ("stt_delay", "shed"),
    [
        (0.1, 0),  # the pause's transcription is done before the caller goes on: just unused
        (2.0, 1),  # a busy box: still running when the next pause comes, so it is shed
    ],
)
async def test_early_transcript_is_dropped_when_the_caller_goes_on(
    autojump_clock: MockClock, stt_delay: float, shed: int
) -> None:
    speech = FakeSpeech(stt=FakeSpeechToText(delay=stt_delay))
    settings = CallSettings(segmenter=SegmenterSettings(end_silence_ms=500, pause_ms=200))
    made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.play(speech.caller_audio("first half"))
        await fake.silence(0.3)  # a pause, not an end
        await fake.say("second half")
        await fake.wait_for_bot_to_finish()
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    # One utterance, transcribed as a whole: the early transcript of the first half was not used.
    assert len(conversation.heard) == 1
    assert fake.result.stats.early_transcriptions_shed == shed
    assert speech.stt.calls == 2  # early (first half), early (whole) reused for the final


async def test_the_end_of_a_pause_keeps_its_transcription_going(autojump_clock: MockClock) -> None:
    speech = FakeSpeech(stt=FakeSpeechToText(delay=2.0))  # longer than the end-of-turn wait
    settings = CallSettings(segmenter=SegmenterSettings(end_silence_ms=500, pause_ms=200))
    made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("the whole thing")
        await fake.wait_for_bot_to_finish()
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    assert conversation.heard == ["the whole thing"]
    assert fake.result.stats.early_transcriptions_shed == 0
    assert speech.stt.calls == 1  # the pause's transcription was the turn's


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task in this trio run."""
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


FAULTS = [
    "reply raises",
    "reply hangs",
    "reply wrong type",
    "stt raises",
    "stt hangs",
    "tts raises",
    "tts hangs",
    "socket drops mid-utterance",
    "socket drops mid-reply",
    "stop mid-reply",
]


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_matrix(autojump_clock: MockClock, speech: FakeSpeech, fault: str) -> None:
    """Each fault costs at most its call; the call's tasks all end with it; on_end runs once."""

    class Faulty(Recorder):
        text = "A reply long enough to still be playing when things go wrong."

        async def reply(self, text: str) -> str:  # type: ignore[override]
            self.heard.append(text)
            if fault == "reply raises":
                raise RuntimeError("boom")
            if fault == "reply hangs":
                await trio.sleep_forever()
            if fault == "reply wrong type":
                return 42  # type: ignore[return-value]
            return self.text

    if fault == "stt raises":
        speech.stt.fail = True
    if fault == "stt hangs":
        speech.stt.delay = 10_000
    settings = CallSettings(reply_timeout=3, stt_timeout=3, tts_timeout=3)
    before = all_tasks()
    made, make = single(Faulty)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        if fault == "tts raises":
            speech.tts.fail = True
        if fault == "tts hangs":
            speech.tts.delay = 10_000
        if fault == "socket drops mid-utterance":
            await fake.play(tone(2.0), wait=False)
            await trio.sleep(1.0)
            await fake.drop()
        else:
            await fake.say("hello")
            if fault in ("socket drops mid-reply", "stop mid-reply"):
                await fake.wait_for(lambda: bool(fake.played))
                await trio.sleep(0.5)
                if fault == "stop mid-reply":
                    await fake.hang_up()
                else:
                    await fake.drop()
            else:
                await fake.silence(8)  # apology (or nothing), then the call goes on
                assert not fake.closed.is_set()
    assert all_tasks() == before  # nothing of the call outlives it
    conversation = made[0]
    assert isinstance(conversation, Recorder)
    assert len(conversation.ended) == 1
    assert fake.result is not None
    expected = {
        "socket drops mid-utterance": "socket closed",
        "socket drops mid-reply": "socket closed",
    }.get(fault, "caller hung up")
    assert fake.result.reason == expected
    if fault.startswith(("reply", "stt")):
        assert " ".join(speech.spoken).endswith(conversation.apology)


async def test_the_process_keeps_serving_after_every_fault(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    """A healthy call after a failing one is unaffected (shared engines, fresh conversation)."""
    speech.stt.fail = True
    async with open_call(Parrot, speech.engines(), speech=speech) as fake:
        await fake.say("lost")
        await fake.wait_for_bot_to_finish()
    speech.stt.fail = False
    async with open_call(Parrot, speech.engines(), speech=speech) as fake:
        await fake.wait_for_bot_to_finish()
        await fake.say("found")
        await fake.wait_for_bot_to_finish()
    assert speech.spoken[-1] == 'You said: "found"'


class PaddedTts(FakeTextToSpeech):
    """A TTS engine that pads every sentence with silence, as hibari does."""

    async def synthesize(self, text: str) -> PCM:
        audio = await super().synthesize(text)
        return np.concatenate([np.zeros(2400, np.int16), audio, np.zeros(3200, np.int16)])


@pytest.mark.parametrize(("leading", "trailing"), [(20, 200), (None, None), (0, 100)])
async def test_silence_around_synthesized_sentences_is_trimmed(
    autojump_clock: MockClock, leading: int | None, trailing: int | None
) -> None:
    speech = FakeSpeech()
    speech.tts = PaddedTts()
    settings = CallSettings(tts_leading_silence_ms=leading, tts_trailing_silence_ms=trailing)
    _made, make = single(Recorder)
    async with open_call(make, speech.engines(), speech=speech, settings=settings) as fake:
        await fake.say("go")
        await fake.wait_for_bot_to_finish()
    played = np.concatenate([chunk.audio for chunk in fake.played])
    sentences = split_sentences(LONG)
    sound = sum(round(speech.tts.duration(s) * 8000) for s in sentences)
    kept = (2400 if leading is None else leading * 8) + (3200 if trailing is None else trailing * 8)
    # μ-law makes the tone's own zero crossings land a sample or two either way.
    assert abs(len(played) - (sound + kept * len(sentences))) <= 8 * len(sentences)
    loud = np.flatnonzero(np.abs(played.astype(np.int32)) > 16)
    assert loud[0] <= (2400 if leading is None else leading * 8) + 2


def test_call_settings_reject_negative_silence() -> None:
    with pytest.raises(ConfigurationError, match="tts_leading_silence_ms must be at least 0"):
        CallSettings(tts_leading_silence_ms=-1)


async def test_load_caller_voice_names_the_engines_it_knows() -> None:
    with pytest.raises(ConfigurationError, match="choose 'hibari' or 'piper'"):
        await load_caller_voice("espeak")
