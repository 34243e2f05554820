"""Turn-taking under MockClock: false interruptions resume, real ones cancel, the words decide when
a turn ends, and a noisy line neither interrupts the bot nor slows the end of a turn."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from phoneactors.audio import PCM, SAMPLE_RATE
from phoneactors.call import CallSettings
from phoneactors.conversation import Conversation, Interruption, TurnSoFar
from phoneactors.engines import Transcription
from phoneactors.engines.webrtc import WebRtcVad
from phoneactors.metrics import Metrics
from phoneactors.records import CallerSaid, CallEvent, FalseInterruption, Interrupted
from phoneactors.segmenter import SegmenterSettings
from phoneactors.testing import EnergyVad, FakeSpeech, FakeSpeechToText, FakeTwilio, open_call
from phoneactors.timing import TurnTiming

LONG = (
    "This is the first sentence of a long answer. "
    "Here comes the second sentence which has quite a few more words in it. "
    "And finally a third one."
)


class Teller(Conversation):
    """Answers every turn with a long reply; records what it heard and every hook."""

    greeting = None
    text = LONG

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.interruptions: list[Interruption] = []
        self.timings: list[TurnTiming] = []

    async def reply(self, text: str) -> str:
        self.heard.append(text)
        return self.text

    async def on_interrupted(self, interruption: Interruption) -> None:
        self.interruptions.append(interruption)

    async def on_turn_timing(self, timing: TurnTiming) -> None:
        self.timings.append(timing)


class Events:
    """A call observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def observe(self, stream_sid: str, event: CallEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[CallEvent]:
        return [e for e in self.events if isinstance(e, kind)]


def reply_seconds(speech: FakeSpeech, text: str = LONG) -> float:
    from phoneactors.sentences import split_sentences

    return sum(speech.tts.duration(s) for s in split_sentences(text))


async def start_long_reply(fake: FakeTwilio, into: float = 3.0) -> None:
    """Ask, and wait until the reply has been playing for ``into`` seconds."""
    before = len(fake.played)
    await fake.say("tell me something long")
    await fake.wait_for(lambda: len(fake.played) > before)
    await trio.sleep_until(fake.played[before].start + into)


def played_between(fake: FakeTwilio, start: float, end: float) -> float:
    return sum(len(p.audio) for p in fake.played if start <= p.start < end) / SAMPLE_RATE


@dataclass
class OverTheReply:
    """A sound made over a long reply, and what came of it once the bot finished."""

    teller: Teller
    events: Events
    fake: FakeTwilio
    sound_ended: float

    def false_interruptions(self) -> list[CallEvent]:
        return self.events.of(FalseInterruption)

    def resumed_after(self) -> float:
        """Seconds from the sound's last frame to the first audio after the clear."""
        clear = self.fake.clears[0]
        return min(p.start for p in self.fake.played if p.start > clear) - self.sound_ended


async def sound_over_a_reply(
    speech: FakeSpeech, sound: PCM, teller: Teller | None = None
) -> OverTheReply:
    """Ask for a long reply, make ``sound`` 3 s into it, and wait for the bot to finish."""
    teller = Teller() if teller is None else teller
    events = Events()
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, observers=[events]
    ) as fake:
        await start_long_reply(fake)
        await fake.play(sound)
        sound_ended = trio.current_time()
        await fake.wait_for_bot_to_finish()
    return OverTheReply(teller, events, fake, sound_ended)


@pytest.mark.parametrize("sound", ["Uh-huh.", "Mm-hmm, okay.", "I see.", "cough", "breath"])
async def test_a_backchannel_or_a_cough_mid_reply_pauses_then_resumes_it(
    autojump_clock: MockClock, speech: FakeSpeech, sound: str
) -> None:
    teller = Teller()
    events = Events()
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, observers=[events]
    ) as fake:
        await start_long_reply(fake)
        audio = {
            "cough": speech.cough(),
            "breath": speech.cough(heard_as="you", seconds=0.5),
        }.get(sound)
        sound_starts = trio.current_time()
        await fake.play(speech.caller_audio(sound) if audio is None else audio)
        sound_ended = trio.current_time()
        await fake.wait_for_bot_to_finish()
    # The bot stopped at once (a clear), then played on: nothing cut, nothing answered.
    assert len(fake.clears) == 1
    assert fake.clears[0] - sound_starts <= 0.2
    assert teller.heard == ["tell me something long"]
    assert teller.interruptions == []
    assert fake.result is not None
    assert fake.result.stats.false_interruptions == 1
    assert fake.result.stats.barge_ins == 0
    [false] = events.of(FalseInterruption)
    assert isinstance(false, FalseInterruption)
    assert false.kind == ("no words" if audio is not None else "backchannel")
    assert false.text == (
        "Thank you." if sound == "cough" else "you" if audio is not None else sound
    )
    assert [e.text for e in events.of(CallerSaid)] == ["tell me something long"]  # type: ignore[attr-defined]
    # Resumed quickly after the sound's last frame, from no later than where it stopped, so
    # the caller heard every word: what played before the clear and after the resume add up
    # to the whole reply at least, and at most a rewind more.
    resumed = min(p.start for p in fake.played if p.start > fake.clears[0])
    assert resumed - sound_ended <= 0.6
    # From the outside, the play-on is the same reply's audio after a gap, not stale audio.
    played_on = fake.played_on_after_clear()
    assert played_on is not None
    assert fake.clears[0] + 0.25 <= played_on <= resumed
    assert fake.stale_audio_after_clear() == 0
    before = played_between(fake, 0, fake.clears[0])
    after = played_between(fake, fake.clears[0], float("inf"))
    total = reply_seconds(speech) + 0.2 * 2  # two pauses between three sentences
    assert before + after >= total - 0.02
    assert before + after <= total + 0.8 + 0.1
    assert (
        speech.spoken.count(
            "Here comes the second sentence which has quite a few more words in it."
        )
        == 1
    )


async def test_a_real_interruption_cancels_the_reply_and_becomes_the_next_turn(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    teller = Teller()
    events = Events()
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, observers=[events]
    ) as fake:
        await start_long_reply(fake)
        began = trio.current_time()
        await fake.say("no wait stop")
        await fake.wait_for(lambda: len(teller.heard) == 2)
        await fake.wait_for_bot_to_finish()
    assert fake.clears[0] - began <= 0.2
    assert fake.stale_audio_after_clear() == 0
    assert fake.played_on_after_clear() is None  # the answer to the interruption is no play-on
    assert teller.heard == ["tell me something long", "no wait stop"]
    [interruption] = teller.interruptions
    assert interruption.heard.startswith("This is the first sentence")
    assert (interruption.heard + " " + interruption.unheard).split() == LONG.split()
    assert fake.result is not None
    assert fake.result.stats.barge_ins == 1
    assert fake.result.stats.false_interruptions == 0
    assert events.of(FalseInterruption) == []
    assert len(events.of(Interrupted)) == 1


async def test_a_backchannel_while_the_bot_is_quiet_is_an_ordinary_turn(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await fake.say("okay")
        await fake.wait_for_bot_to_finish()
    assert teller.heard == ["okay"]


async def test_a_cough_while_the_bot_is_quiet_is_not_answered(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await fake.play(speech.cough())
        await fake.silence(3)
        await fake.say("hello")
        await fake.wait_for_bot_to_finish()
    assert teller.heard == ["hello"]


async def test_a_streamed_reply_goes_on_being_generated_while_paused(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    produced: list[float] = []

    class Streamer(Teller):
        async def reply(self, text: str) -> AsyncIterator[str]:  # type: ignore[override]
            for token in ["One sentence here.", " Two sentences here.", " Three.", " Four."]:
                await trio.sleep(0.3)
                produced.append(trio.current_time())
                yield token

    streamer = Streamer()
    async with open_call(lambda: streamer, speech.engines(), speech=speech) as fake:
        await fake.say("go")
        await fake.wait_for(lambda: bool(fake.played))
        await fake.play(speech.caller_audio("Mm-hmm."), wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        paused_at = fake.clears[0]
        await fake.wait_for_bot_to_finish()
    assert any(paused_at < t for t in produced)  # tokens kept coming while it was paused
    assert streamer.interruptions == []
    assert speech.spoken == ["One sentence here.", "Two sentences here.", "Three.", "Four."]


async def test_a_fragment_then_a_pause_then_the_rest_is_one_turn(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await fake.say("I'd like to book a table for")
        await fake.silence(1.0)
        assert fake.outbound == []  # no premature reply
        await fake.say("four people at seven")
        await fake.wait_for(lambda: bool(teller.heard))
        await fake.wait_for_bot_to_finish()
    # The fake engine hears one tone per utterance: the whole turn's audio was transcribed
    # after the rest was said, and the turn was answered once.
    assert len(teller.heard) == 1
    assert fake.clears == []


@pytest.mark.parametrize("nearly_heard", [True, False])
async def test_a_fragment_the_engine_nearly_heard_as_one_waits_for_the_rest(
    autojump_clock: MockClock, speech: FakeSpeech, nearly_heard: bool
) -> None:
    """Heard as a whole sentence ("…a table four."), but nearly as a fragment ("…a table
    for"): the turn waits, and the rest joins it. Without the near reading the bot answers
    the fragment, and the rest interrupts that answer."""
    teller = Teller()
    alternatives = ["Can I get a table for"] if nearly_heard else []
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await fake.play(speech.caller_audio("Can I get a table four.", alternatives=alternatives))
        await fake.silence(1.0)
        assert (fake.played == []) is nearly_heard
        await fake.say("four people at seven")
        await fake.wait_for(lambda: bool(teller.heard))
        await fake.wait_for_bot_to_finish()
    assert len(teller.heard) == (1 if nearly_heard else 2)


@pytest.mark.parametrize(
    ("text", "complete"),
    [("what time do you open tomorrow", True), ("my phone number is 555", False)],
)
async def test_the_words_decide_how_long_the_silence_that_ends_a_turn_is(
    autojump_clock: MockClock, speech: FakeSpeech, text: str, complete: bool
) -> None:
    teller = Teller()
    settings = CallSettings(
        segmenter=SegmenterSettings(end_silence_ms=300, incomplete_silence_ms=1600)
    )
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, settings=settings
    ) as fake:
        await fake.say(text)
        await fake.wait_for_bot_to_finish()
    [timing] = teller.timings
    end_of_speech = timing.stages_ms()["end_of_speech"]
    assert end_of_speech == pytest.approx(300 if complete else 1600, abs=20)


async def test_a_conversation_can_judge_turns_and_backchannels_itself(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    judged: list[str] = []

    class Patient(Teller):
        backchannels = frozenset({"go on"})

        async def is_turn_complete(self, turn: TurnSoFar) -> bool:
            judged.append(turn.text)
            assert len(turn.audio) > 0
            return turn.text.endswith("over")

    patient = Patient()
    async with open_call(lambda: patient, speech.engines(), speech=speech) as fake:
        await fake.say("hello there")  # reads complete to the default rule, not to Patient
        await fake.wait_for(lambda: bool(patient.timings) or bool(fake.played))
        await fake.wait_for_bot_to_finish()
        [timing] = patient.timings
        assert timing.stages_ms()["end_of_speech"] == pytest.approx(1600, abs=20)
        await start_long_reply(fake)
        await fake.say("go on")  # a backchannel to this conversation only
        await fake.wait_for_bot_to_finish()
    assert judged[0] == "hello there"
    assert patient.heard == ["hello there", "tell me something long"]
    assert patient.interruptions == []


async def test_failing_turn_hooks_fall_back_to_the_defaults(
    autojump_clock: MockClock, speech: FakeSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Teller):
        def is_backchannel(self, text: str) -> bool:
            raise RuntimeError("no idea")

        async def is_turn_complete(self, turn: TurnSoFar) -> bool:
            raise RuntimeError("no idea either")

    broken = Broken()
    async with open_call(lambda: broken, speech.engines(), speech=speech) as fake:
        await fake.say("what time is it")
        await fake.wait_for_bot_to_finish()
        await start_long_reply(fake)
        await fake.say("uh-huh")  # the hook fails: taken as words, the reply ends
        await fake.wait_for(lambda: len(broken.heard) == 3)
    [timing, *_] = broken.timings
    assert timing.stages_ms()["end_of_speech"] == pytest.approx(300, abs=20)
    assert len(broken.interruptions) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("is_turn_complete raised" in m for m in messages)
    assert any("is_backchannel raised" in m for m in messages)


async def test_words_after_a_reply_nobody_heard_join_the_turn_before(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    """The words read complete but the caller was only pausing: they go on before any of the
    reply has played, so the reply is dropped and both parts are answered as one turn."""

    class Slow(Teller):
        async def reply(self, text: str) -> str:
            self.heard.append(text)
            await trio.sleep(1.0)
            return "Sure."

    slow = Slow()
    async with open_call(lambda: slow, speech.engines(), speech=speech) as fake:
        await fake.say("I want to book a table")
        await fake.silence(0.5)
        await fake.say("for four people")
        await fake.wait_for_bot_to_finish()
    assert slow.heard == ["I want to book a table", "I want to book a table for four people"]
    assert [i.heard for i in slow.interruptions] == [""]
    # The first reply was ready (and synthesized) while paused, but never played.
    assert len(fake.bot_audio) / SAMPLE_RATE == pytest.approx(
        speech.tts.duration("Sure."), abs=0.01
    )


@pytest.mark.parametrize(("pause", "joined"), [(0.7, True), (1.1, True), (1.5, False)])
async def test_words_soon_after_a_reply_began_go_on_with_the_turn_before(
    autojump_clock: MockClock, speech: FakeSpeech, pause: float, joined: bool
) -> None:
    """A slow caller pauses mid-sentence after words that read complete; the bot begins to
    answer, and the caller goes on. Heard within about a second of their last word, the
    rest is the same turn: both parts are answered as one, and the history holds one caller
    turn. Later, it is a new turn, as any interruption. The pause is from word to word: at
    1.1 s, speech is heard (160 ms into the words) 1.26 s after the last word, and joins."""
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await fake.say("could you read me the opening hours of every branch")
        await fake.silence(pause)
        await fake.say("weekends included")
        await fake.wait_for(lambda: len(teller.heard) == 2)
        await fake.wait_for_bot_to_finish()
        history = [(t.speaker, t.text) for t in teller.history]
    first = "could you read me the opening hours of every branch"
    [interruption] = teller.interruptions
    assert interruption.heard  # the caller heard the reply begin
    if joined:
        assert teller.heard == [first, f"{first} weekends included"]
        assert history == [("caller", f"{first} weekends included"), ("bot", LONG)]
    else:
        assert teller.heard == [first, "weekends included"]
        assert history[:3] == [
            ("caller", first),
            ("bot", interruption.heard),
            ("caller", "weekends included"),
        ]


async def test_false_interruptions_are_counted_in_metrics(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    metrics = Metrics()
    async with open_call(Teller, speech.engines(), speech=speech, observers=[metrics]) as fake:
        await start_long_reply(fake)
        await fake.play(speech.cough())
        await fake.silence(1.0)
        await fake.play(speech.caller_audio("yeah"))
        await fake.wait_for_bot_to_finish()
    text = metrics.render().decode()
    assert 'phoneactors_false_interruptions_total{kind="no_words"} 1.0' in text
    assert 'phoneactors_false_interruptions_total{kind="backchannel"} 1.0' in text
    assert "phoneactors_barge_ins_total 0.0" in text


# -- a noisy line -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spoken() -> PCM:
    """Real speech (hibari, the default voice), cut to its sound: the VAD's hangover after a
    word is a response to speech, which no test tone provokes."""
    from phoneactors.engines.hibari import HibariTTS
    from phoneactors.playback import trim_silence

    async def synthesize() -> PCM:
        tts = HibariTTS(limiter=trio.CapacityLimiter(1))
        return await tts.synthesize("What time do you open tomorrow?")

    return trim_silence(trio.run(synthesize), leading_ms=0, trailing_ms=0)


class Hears(FakeSpeechToText):
    """Hears the same words in any sound."""

    def recognise(self, audio: PCM) -> Transcription:
        return Transcription("what time do you open tomorrow" if len(audio) else "")


async def answer_delay(
    spoken: PCM, *, hiss_dbfs: float | None, gate: bool, faint: bool = True
) -> float:
    """Seconds from the end of the caller's speech to the bot's first audio."""
    speech = FakeSpeech(vad=WebRtcVad(3), stt=Hears())  # type: ignore[arg-type]
    settings = CallSettings(
        noise_gate=gate,
        segmenter=SegmenterSettings() if faint else SegmenterSettings(faint_db=None),
    )
    async with open_call(
        Teller, speech.engines(), speech=speech, settings=settings, line_noise_dbfs=hiss_dbfs
    ) as fake:
        await fake.silence(1.0)
        await fake.play(spoken)
        speech_end = trio.current_time()
        await fake.silence(4.0)
    assert fake.clears == []  # the line's noise never paused the reply
    return fake.played[0].start - speech_end


async def test_a_noisy_line_does_not_stretch_the_end_of_the_turn(
    autojump_clock: MockClock, spoken: PCM
) -> None:
    clean = await answer_delay(spoken, hiss_dbfs=None, gate=True)
    noisy = await answer_delay(spoken, hiss_dbfs=-45.0, gate=True)
    # The hiss may hide the softest end of the last word, never stretch the wait past a frame
    # or two.
    assert noisy - clean < 0.05  # two 20 ms frames at most
    # The gate and the faint-frame rule each keep the VAD's hangover over the hiss from
    # stretching it; without both it is back.
    clean_gate_only = await answer_delay(spoken, hiss_dbfs=None, gate=True, faint=False)
    gate_only = await answer_delay(spoken, hiss_dbfs=-45.0, gate=True, faint=False)
    faint_only = await answer_delay(spoken, hiss_dbfs=-45.0, gate=False)
    neither = await answer_delay(spoken, hiss_dbfs=-45.0, gate=False, faint=False)
    assert gate_only - clean_gate_only < 0.05
    assert faint_only - clean < 0.05
    assert neither - gate_only > 0.05
    # The faint-frame rule also cuts the VAD's hangover on a clean line.
    assert clean <= clean_gate_only


@pytest.mark.parametrize("dbfs", [-50.0, -45.0, -40.0])
async def test_a_noisy_line_never_interrupts_the_bot(
    autojump_clock: MockClock, dbfs: float
) -> None:
    speech = FakeSpeech(vad=WebRtcVad(3))  # type: ignore[arg-type]
    async with open_call(Teller, speech.engines(), speech=speech, line_noise_dbfs=dbfs) as fake:
        await fake.silence(2.0)
        await start_long_reply(fake, into=0.5)
        await fake.wait_for_bot_to_finish()
    assert fake.clears == []
    assert fake.result is not None
    assert fake.result.stats.false_interruptions == 0


async def test_a_word_whose_soft_start_the_vad_misses_stops_the_bot_as_fast_on_a_noisy_line(
    autojump_clock: MockClock,
) -> None:
    """On a hissy line the VAD misses the soft start of many words ("Twenty", "Stop"), which
    the noise gate hears 6 dB over the hiss: those frames count toward ``min_speech_ms``, so
    speech starts 160 ms after the word's first frame, not 160 ms after the VAD's first."""
    speech = FakeSpeech(vad=EnergyVad(1500.0))
    soft_ms = 80
    word = speech.caller_audio("no wait stop")
    onset = word[: soft_ms * 8] // 10  # about -33 dBFS: unvoiced to this VAD, over the gate
    async with open_call(Teller, speech.engines(), speech=speech, line_noise_dbfs=-45.0) as fake:
        await fake.silence(2.0)
        await start_long_reply(fake)
        began = trio.current_time()
        await fake.play(np.concatenate([onset, word]), wait=False)
        await fake.wait_for(lambda: bool(fake.clears))
        await fake.wait_for_bot_to_finish()
    decided = began + SegmenterSettings().min_speech_ms / 1000
    assert fake.clears[0] - decided <= 0.02 + 0.02  # one frame, plus the tick alignment
    assert fake.stale_audio_after_clear() == 0


class HearsTheCaller(FakeSpeechToText):
    """Hears the caller's words in audio as loud as their speech, and nothing in quieter
    sound: voices in the background are too far away to make out."""

    def __init__(self, spoken: PCM) -> None:
        super().__init__()
        self.loud = loudest_frame(spoken) / 3.0  # 10 dB under their loudest 20 ms

    def recognise(self, audio: PCM) -> Transcription:
        heard = len(audio) and loudest_frame(audio) > self.loud
        return Transcription("what time do you open tomorrow" if heard else "")


def loudest_frame(audio: PCM) -> float:
    frames = audio[: len(audio) // 160 * 160].astype(np.float64).reshape(-1, 160)
    return float(np.sqrt((frames**2).mean(axis=1)).max())


@pytest.fixture(scope="module")
def room() -> list[PCM]:
    """What other people in the caller's room say (hibari), for babble."""
    from phoneactors.engines.hibari import HibariTTS

    async def synthesize() -> list[PCM]:
        tts = HibariTTS(limiter=trio.CapacityLimiter(1))
        return [
            await tts.synthesize(text)
            for text in (
                "I think the train was late again this morning.",
                "Could you pass me the menu, please?",
                "We should meet at the station after work.",
                "No, he never called me back about that.",
            )
        ]

    return trio.run(synthesize)


async def background_delay(
    spoken: PCM, room: list[PCM], *, talkers: int, under_db: float, faint: bool
) -> float:
    """Seconds from the end of the caller's speech to the bot's first audio, while
    ``talkers`` people talk in the caller's room, ``under_db`` under the caller."""
    from phoneactors import sounds

    caller_dbfs = 20 * np.log10(np.sqrt(np.mean(spoken.astype(np.float64) ** 2)) / 32768)
    background = sounds.babble(
        room, 12.0, dbfs=caller_dbfs - under_db, rng=np.random.default_rng(talkers), talkers=talkers
    )
    teller = Teller()
    speech = FakeSpeech(vad=WebRtcVad(3), stt=HearsTheCaller(spoken))  # type: ignore[arg-type]
    settings = CallSettings(
        segmenter=SegmenterSettings() if faint else SegmenterSettings(faint_db=None)
    )
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, settings=settings, background=background
    ) as fake:
        await fake.silence(1.0)
        await fake.play(spoken)
        speech_end = trio.current_time()
        await fake.silence(6.0)
    if not teller.heard:
        return math.inf  # the turn never ended
    assert teller.heard[0] == "what time do you open tomorrow"
    return fake.played[0].start - speech_end


@pytest.mark.parametrize(("talkers", "under_db"), [(1, 20.0), (4, 15.0)])
async def test_a_turn_ends_while_people_talk_in_the_background(
    autojump_clock: MockClock, spoken: PCM, room: list[PCM], talkers: int, under_db: float
) -> None:
    """Voices 15-20 dB under the caller's are speech to the VAD and louder than the line's
    noise floor, so the silence that ends a turn comes only when the room pauses too (one
    talker: 2 s late; four: never). Frames faint beside the caller's own level count as
    quiet, and the turn ends a few tenths of a second later than on a clean line."""
    clean = await answer_delay(spoken, hiss_dbfs=None, gate=True)
    room_delay = await background_delay(
        spoken, room, talkers=talkers, under_db=under_db, faint=True
    )
    assert room_delay - clean <= 0.5
    without = await background_delay(spoken, room, talkers=talkers, under_db=under_db, faint=False)
    assert without - clean > 1.5


@pytest.mark.parametrize(
    ("talkers", "under_db", "without_rule"), [(1, 20.0, "paused"), (4, 15.0, "never answered")]
)
async def test_people_talking_in_the_background_do_not_interrupt_the_bot(
    autojump_clock: MockClock,
    spoken: PCM,
    room: list[PCM],
    talkers: int,
    under_db: float,
    without_rule: str,
) -> None:
    """Once the caller has spoken, voices faint beside their level do not pause a reply: the
    caller hears it whole. Without the faint rule one talker pauses it, and four keep the
    caller's turn from ending at all."""

    async def reply_over_room(faint: bool) -> tuple[FakeTwilio, float]:
        from phoneactors import sounds

        caller_dbfs = 20 * np.log10(np.sqrt(np.mean(spoken.astype(np.float64) ** 2)) / 32768)
        background = sounds.babble(
            room, 12.0, dbfs=caller_dbfs - under_db, rng=np.random.default_rng(7), talkers=talkers
        )
        speech = FakeSpeech(vad=WebRtcVad(3), stt=HearsTheCaller(spoken))  # type: ignore[arg-type]
        settings = CallSettings(
            segmenter=SegmenterSettings() if faint else SegmenterSettings(faint_db=None)
        )
        async with open_call(
            Teller, speech.engines(), speech=speech, settings=settings, background=background
        ) as fake:
            await fake.silence(1.0)
            await fake.play(spoken)
            await fake.silence(reply_seconds(speech) + 4.0)
        return fake, sum(len(p.audio) for p in fake.played) / SAMPLE_RATE

    fake, played = await reply_over_room(faint=True)
    assert fake.clears == []
    assert played == pytest.approx(reply_seconds(FakeSpeech()), abs=0.05)
    without, _ = await reply_over_room(faint=False)
    if without_rule == "paused":
        assert without.clears
    else:
        assert not without.played


# -- under load, and out of order ------------------------------------------------------------


async def test_a_slow_transcriber_never_leaves_the_call_deaf(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    """The caller talks in short bursts while every transcription takes 5 s: the judgements
    of the pauses back up, and must never block the transcriber (which the VAD waits on)."""
    teller = Teller()
    speech.stt.delay = 5.0
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        for _ in range(8):
            await fake.say("hello")
            await fake.silence(0.25)
        await fake.silence(30)
        speech.stt.delay = 0.1
        await fake.say("are you there")
        await fake.wait_for(lambda: "are you there" in teller.heard)
    assert fake.result is not None


async def test_a_reply_never_plays_over_an_utterance_that_began_before_its_turn_was_decided(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    """Without early transcription the cough's transcript comes after the caller has started
    to speak again: the reply stays paused through that speech, and the words end it."""
    teller = Teller()
    settings = CallSettings(segmenter=SegmenterSettings(pause_ms=0, end_silence_ms=300))
    speech.stt.delay = 0.6
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, settings=settings
    ) as fake:
        await start_long_reply(fake)
        await fake.play(speech.cough())
        await fake.silence(0.35)
        words_start = trio.current_time()
        await fake.say("wait I have a question")
        words_end = trio.current_time()
        await fake.wait_for(lambda: len(teller.heard) == 2)
        await fake.wait_for_bot_to_finish()
    assert played_between(fake, words_start, words_end + 0.2) == 0
    assert teller.heard[1].endswith("wait I have a question")
    assert len(teller.interruptions) == 1


async def test_a_yes_while_the_bot_is_still_thinking_is_answered(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Slow(Teller):
        async def reply(self, text: str) -> str:
            self.heard.append(text)
            await trio.sleep(1.5)
            return "Take your time."

    slow = Slow()
    events = Events()
    async with open_call(lambda: slow, speech.engines(), speech=speech, observers=[events]) as fake:
        await fake.say("let me think")
        await fake.silence(0.5)
        await fake.say("yes")
        await fake.wait_for_bot_to_finish()
    assert slow.heard == ["let me think", "let me think yes"]
    assert events.of(FalseInterruption) == []


async def test_a_lone_filler_over_the_bot_lets_it_play_on(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    # "Uh." is a hesitation, nothing said yet (often a clipped "uh-huh"): the reply plays on.
    teller = Teller()
    events = Events()
    async with open_call(
        lambda: teller, speech.engines(), speech=speech, observers=[events]
    ) as fake:
        await start_long_reply(fake)
        await fake.play(speech.caller_audio("Uh."))
        await fake.wait_for_bot_to_finish()
        await fake.say("uh, um")  # said to a quiet bot, it is still the caller's turn
        await fake.wait_for(lambda: len(teller.heard) == 2)
    assert teller.interruptions == []
    assert events.of(FalseInterruption) == [FalseInterruption("no words", "Uh.")]
    assert teller.heard == ["tell me something long", "uh, um"]


@pytest.mark.parametrize(
    ("sound", "kind"), [("Oh, I see...", "backchannel"), ("Um...", "no words")]
)
async def test_a_backchannel_that_trails_off_over_the_bot_resumes_without_the_long_wait(
    autojump_clock: MockClock, speech: FakeSpeech, sound: str, kind: str
) -> None:
    # Said to a quiet bot, these would wait the long silence for the caller to go on; over a
    # paused reply they end at the short one, and the reply plays on.
    call = await sound_over_a_reply(speech, speech.caller_audio(sound))
    assert call.false_interruptions() == [FalseInterruption(kind, sound)]
    assert call.teller.heard == ["tell me something long"]
    assert call.resumed_after() <= 0.6


async def test_words_the_caller_goes_on_with_after_a_backchannel_interrupt(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    # "Okay..." ends at the short silence over the bot; what follows is a new sound over the
    # reply, and real words end it and are the next turn.
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        await fake.play(speech.caller_audio("Okay..."))
        await trio.sleep(0.5)
        await fake.say("what time do you close")
        await fake.wait_for(lambda: len(teller.heard) == 2)
    assert teller.heard == ["tell me something long", "what time do you close"]
    assert len(teller.interruptions) == 1


@pytest.mark.parametrize(
    ("heard_as", "hinted", "avg_logprob", "taken_as"),
    [
        ("Hymn.", "Mm-hmm.", -1.3, FalseInterruption("backchannel", "Mm-hmm.")),
        ("Bye bye.", "Okay.", -1.3, FalseInterruption("backchannel", "Okay.")),
        ("No", "Mm-hmm.", -2.1, FalseInterruption("backchannel", "Mm-hmm.")),  # barely heard
        # A long hum heard twice is still one backchannel ...
        (
            "and make sure.",
            "Mm-hmm. Mm-hmm.",
            -1.3,
            FalseInterruption("backchannel", "Mm-hmm. Mm-hmm."),
        ),
        # ... but the hint echoed is none ("make sure" has content: it interrupts).
        ("and make sure.", "Okay. Okay. Okay. Okay.", -1.3, None),
        # Still no sense, and neither reading holds a word that interrupts or one with content
        # (a hum misheard as function words): it plays on.
        ("It has.", "It has.", -1.3, FalseInterruption("unclear", "It has.")),
        # ... however sure the engine was of them.
        ("It has.", "It has.", -0.3, FalseInterruption("unclear", "It has.")),
        ("Up.", "Okay. Okay. Okay. Okay.", -1.3, FalseInterruption("unclear", "Up.")),
        ("Uh, them.", "", -1.3, FalseInterruption("unclear", "Uh, them.")),
        # A word that interrupts in either reading: it interrupts.
        ("Turn here.", "Hang on.", -1.3, None),
        ("Oh no", "No.", -1.8, None),
        ("It has.", "What?", -1.3, None),
        # A word with content in either reading: the caller answering over the bot, however
        # unsure the engine was of it.
        ("Sales.", "Sales.", -0.9, None),
        ("Tomorrow", "Come on, Rob.", -1.2, None),
        ("These are.", "Two days.", -1.3, None),
    ],
)
async def test_an_unclear_short_sound_over_the_bot_gets_a_second_look(
    autojump_clock: MockClock,
    speech: FakeSpeech,
    heard_as: str,
    hinted: str,
    avg_logprob: float,
    taken_as: FalseInterruption | None,
) -> None:
    sound = speech.misheard(heard_as, hinted=hinted, avg_logprob=avg_logprob)
    call = await sound_over_a_reply(speech, sound)
    assert speech.stt.hinted_calls == 1
    if taken_as is not None:
        assert call.teller.heard == ["tell me something long"]
        assert call.false_interruptions() == [taken_as]
        assert call.resumed_after() <= 0.6  # the second look included
    else:
        assert call.teller.heard == ["tell me something long", heard_as]
        assert len(call.teller.interruptions) == 1


@pytest.mark.parametrize("heard_as", ["Are you there?", "So?", "Sales."])
async def test_a_clear_question_or_word_with_content_over_the_bot_gets_no_second_look(
    autojump_clock: MockClock, speech: FakeSpeech, heard_as: str
) -> None:
    # Heard with confidence, function words that ask are no hum misheard ("It has." is), and
    # neither is a word with content: each interrupts at once.
    sound = speech.misheard(heard_as, hinted="Mm-hmm.", avg_logprob=-0.3)
    call = await sound_over_a_reply(speech, sound)
    assert speech.stt.hinted_calls == 0
    assert call.teller.heard == ["tell me something long", heard_as]


@pytest.mark.parametrize("heard_as", ["MM on", "and the", "And I can..."])
async def test_a_misheard_backchannel_that_reads_unfinished_resumes_without_the_long_wait(
    autojump_clock: MockClock, speech: FakeSpeech, heard_as: str
) -> None:
    # Heard at the pause as words that trail off, it would wait the long silence; looked at
    # again there, it is a backchannel, and the reply plays on. The engine looks once.
    call = await sound_over_a_reply(speech, speech.misheard(heard_as, hinted="Mm-hmm."))
    assert call.false_interruptions() == [FalseInterruption("backchannel", "Mm-hmm.")]
    assert speech.stt.hinted_calls == 1
    assert call.resumed_after() <= 0.6


async def test_an_unclear_sound_that_reads_unfinished_still_waits_for_the_rest(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    # "Can I" over the bot, unclear and no backchannel on a second look: it may be the start
    # of a sentence, so the caller gets the long silence to go on, as ever.
    call = await sound_over_a_reply(speech, speech.misheard("Can I", hinted="Can I"))
    assert call.false_interruptions() == [FalseInterruption("unclear", "Can I")]
    assert call.resumed_after() >= 1.5


async def test_a_conversation_can_have_unclear_sounds_interrupt(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Strict(Teller):
        unclear_sounds_play_on = False

    teller = Strict()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        await fake.play(speech.misheard("It has.", hinted="It has."))
        await fake.wait_for(lambda: len(teller.heard) == 2)
    assert teller.heard == ["tell me something long", "It has."]
    assert len(teller.interruptions) == 1


@pytest.mark.parametrize(
    ("text", "logprob"),
    [("Stop.", -1.3), ("What?", -1.0), ("Sounds like a plan to me.", -1.3), ("Hymn.", -0.3)],
)
async def test_no_second_look_at_an_interrupting_word_a_long_or_a_clear_one(
    autojump_clock: MockClock, speech: FakeSpeech, text: str, logprob: float
) -> None:
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        seconds = max(0.4, len(text) * 0.06)
        await fake.play(speech.misheard(text, hinted="Okay.", avg_logprob=logprob, seconds=seconds))
        await fake.wait_for(lambda: len(teller.heard) == 2)
        await fake.wait_for_bot_to_finish()
    assert speech.stt.hinted_calls == 0
    assert teller.heard == ["tell me something long", text]


async def test_a_failing_second_look_interrupts(
    autojump_clock: MockClock, speech: FakeSpeech, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(audio: PCM, hint: str) -> Transcription:
        from phoneactors.errors import EngineError

        raise EngineError("fake-stt: the second look failed")

    monkeypatch.setattr(speech.stt, "transcribe_hinted", broken)
    teller = Teller()
    async with open_call(lambda: teller, speech.engines(), speech=speech) as fake:
        await start_long_reply(fake)
        await fake.play(speech.misheard("Hymn.", hinted="Mm-hmm."))
        await fake.wait_for(lambda: len(teller.heard) == 2)
        await fake.wait_for_bot_to_finish()
    assert teller.heard == ["tell me something long", "Hymn."]
