"""Fake speech engines for tests: fast, deterministic, and as telling as real ones.

Caller "speech" is a tone whose frequency says which text it is (:meth:`FakeSpeech.caller_audio`):
:class:`EnergyVad` calls it speech, :class:`FakeSpeechToText` hears its text (and, as a real
engine may, mishears it with a real engine's doubt), and :class:`FakeTextToSpeech` speaks the
bot's text as a tone as long as the words would take to say. Use them through
:mod:`phoneactors.testing`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import trio

from .audio import FRAME_SAMPLES, PCM, SAMPLE_RATE
from .engines import Engines, TextToSpeech, Transcription
from .errors import EngineError

__all__ = ["EnergyVad", "FakeSpeech", "FakeSpeechToText", "FakeTextToSpeech", "tone"]


def tone(seconds: float, *, frequency: float = 440.0, amplitude: float = 0.3) -> PCM:
    """A sine tone at 8 kHz: loud enough for :class:`EnergyVad` to call it speech."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


class EnergyVad:
    """A deterministic VAD for tests: a frame is speech when its RMS exceeds ``threshold``."""

    name = "energy"

    def __init__(self, threshold: float = 500.0) -> None:
        if not threshold >= 0:
            raise ValueError(f"threshold must be at least 0, got {threshold!r}")
        self.threshold = threshold

    async def load(self) -> None:
        pass

    def new_detector(self) -> EnergyVad:
        return self

    def is_speech(self, frame: PCM) -> bool:
        # mean square against threshold squared: the same verdict as RMS, a quarter of the time
        samples = frame.astype(np.float64)
        return float(np.dot(samples, samples)) > self.threshold**2 * len(samples)


_TONE_BASE: Final = 400.0
_TONE_STEP: Final = 40.0
_TONE_SLOTS: Final = 80
"""Fake caller speech is a tone; its frequency (400 Hz + 40 Hz steps) says which text it is."""


class FakeSpeechToText:
    """Recognises the caller speech that :class:`FakeSpeech` made.

    Each text the fake caller says becomes a tone of its own frequency; this engine finds the
    tone's frequency and answers that text, so the same audio always gives the same transcript
    (early and final transcriptions agree) and silence or noise gives ``""``. A text can be
    registered with the signals a real engine would give (``no_speech_prob``,
    ``avg_logprob``): that is how a cough "heard" as "Thank you." is made. ``delay`` seconds
    of trio time per call; ``fail`` makes every call raise :class:`EngineError`.
    """

    name = "fake-stt"

    def __init__(self, *, delay: float = 0.1) -> None:
        self.delay = delay
        self.fail = False
        self.calls = 0
        self.hinted_calls = 0
        self._texts: dict[int, Transcription] = {}
        self._hinted: dict[int, str] = {}
        self._said = 0

    async def load(self) -> None:
        pass

    def register(
        self,
        text: str,
        *,
        no_speech_prob: float | None = None,
        avg_logprob: float | None = None,
        hinted: str | None = None,
        alternatives: Sequence[str] = (),
    ) -> float:
        """Remember ``text`` (and the signals to give with it, the other readings the engine
        nearly heard: ``alternatives``, and what a transcription told what to expect hears
        instead: ``hinted``); returns the tone frequency that will transcribe to it."""
        slot = self._said % _TONE_SLOTS
        self._said += 1
        self._texts[slot] = Transcription(
            text, no_speech_prob, avg_logprob, alternatives=tuple(alternatives)
        )
        self._hinted.pop(slot, None)
        if hinted is not None:
            self._hinted[slot] = hinted
        return _TONE_BASE + slot * _TONE_STEP

    def _slot(self, audio: PCM) -> int | None:
        samples = np.asarray(audio, dtype=np.float64)
        if len(samples) < FRAME_SAMPLES or np.sqrt(np.mean(samples**2)) < 100:
            return None
        spectrum = np.abs(np.fft.rfft(samples))
        peak = float(np.argmax(spectrum)) * SAMPLE_RATE / len(samples)
        slot = round((peak - _TONE_BASE) / _TONE_STEP)
        if abs(peak - (_TONE_BASE + slot * _TONE_STEP)) > _TONE_STEP / 4:
            return None
        return slot

    def recognise(self, audio: PCM) -> Transcription:
        """The text whose tone dominates ``audio`` (``""`` for silence or an unknown sound)."""
        slot = self._slot(audio)
        return Transcription("") if slot is None else self._texts.get(slot, Transcription(""))

    async def transcribe(self, audio: PCM) -> Transcription:
        """What the registered text says, without the readings it nearly heard."""
        return dataclasses.replace(await self.transcribe_with_alternatives(audio), alternatives=())

    async def transcribe_with_alternatives(self, audio: PCM) -> Transcription:
        """What the registered text says, with its ``alternatives`` (the transcript at a
        pause)."""
        self.calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-stt: failing on purpose")
        return self.recognise(audio)

    async def transcribe_hinted(self, audio: PCM, hint: str) -> Transcription:
        """What the registered ``hinted`` text says (else the same as :meth:`transcribe`)."""
        self.hinted_calls += 1
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-stt: failing on purpose")
        slot = self._slot(audio)
        if slot is not None and slot in self._hinted:
            return Transcription(self._hinted[slot])
        return self.recognise(audio)


class FakeTextToSpeech:
    """Turns text into a tone as long as the text would take to say (``seconds_per_char``).

    Records every text in :attr:`spoken`. ``delay`` seconds of trio time per sentence;
    ``fail`` makes it raise EngineError.
    """

    name = "fake-tts"

    def __init__(
        self, *, delay: float = 0.02, seconds_per_char: float = 0.06, frequency: float = 300.0
    ) -> None:
        self.delay = delay
        self.seconds_per_char = seconds_per_char
        self.frequency = frequency
        self.fail = False
        self.spoken: list[str] = []

    async def load(self) -> None:
        pass

    def duration(self, text: str) -> float:
        return max(0.2, len(text) * self.seconds_per_char)

    async def synthesize(self, text: str) -> PCM:
        await trio.sleep(self.delay)
        if self.fail:
            raise EngineError("fake-tts: failing on purpose")
        self.spoken.append(text)
        return tone(self.duration(text), frequency=self.frequency)


class _CallerVoice:
    """Caller speech for the fake engines: :meth:`FakeSpeech.caller_audio` as a TTS engine."""

    name = "fake-caller"

    def __init__(self, speech: FakeSpeech) -> None:
        self._speech = speech

    async def load(self) -> None:
        pass

    async def synthesize(self, text: str) -> PCM:
        return self._speech.caller_audio(text)


@dataclass
class FakeSpeech:
    """A matching set of fake engines, plus a caller voice the fake STT understands."""

    vad: EnergyVad = field(default_factory=EnergyVad)
    stt: FakeSpeechToText = field(default_factory=FakeSpeechToText)
    tts: FakeTextToSpeech = field(default_factory=FakeTextToSpeech)
    caller_seconds_per_char: float = 0.06

    def engines(self) -> Engines:
        return Engines(vad=self.vad, stt=self.stt, tts=self.tts)

    @property
    def caller_voice(self) -> TextToSpeech:
        """A TextToSpeech for :class:`FakeTwilio`'s caller, made of :meth:`caller_audio`."""
        return _CallerVoice(self)

    def caller_audio(self, text: str, *, alternatives: Sequence[str] = ()) -> PCM:
        """Caller "speech" for ``text``: a tone that :attr:`stt` transcribes as ``text``
        (and, as a real engine may, as nearly one of ``alternatives`` too: "Can I get a table
        four." beside "Can I get a table for")."""
        seconds = max(0.3, len(text) * self.caller_seconds_per_char)
        return tone(seconds, frequency=self.stt.register(text, alternatives=alternatives))

    def misheard(
        self, heard_as: str, *, hinted: str, avg_logprob: float = -1.3, seconds: float = 0.4
    ) -> PCM:
        """A short sound the STT makes no sense of, heard as ``heard_as`` with a real engine's
        doubt (``avg_logprob``), and as ``hinted`` when told what to expect: a hummed
        "mm-hmm" that Whisper hears as "Hymn."."""
        frequency = self.stt.register(heard_as, avg_logprob=avg_logprob, hinted=hinted)
        return tone(seconds, frequency=frequency)

    def cough(self, *, heard_as: str = "Thank you.", seconds: float = 0.4) -> PCM:
        """A cough (or a breath, a door): a burst of noise that the VAD calls speech and
        :attr:`stt` "hears" as ``heard_as``, as Whisper does, with a real engine's signals of
        no speech (``no_speech_prob`` 0.8, ``avg_logprob`` -1.3). It has no voicing (no pitch),
        as a real cough has little: the runtime must not believe the transcript."""
        frequency = self.stt.register(heard_as, no_speech_prob=0.8, avg_logprob=-1.3)
        rng = np.random.default_rng(round(frequency))
        burst = rng.normal(0.0, 0.3 * 32767 / 3, round(seconds * SAMPLE_RATE))
        # A faint tone at the registered frequency, far under the noise, tells the fake STT
        # what to "hear" without making the burst periodic.
        marker = tone(seconds, frequency=frequency, amplitude=0.03).astype(np.float64)
        return np.clip(burst + marker[: len(burst)], -32768, 32767).astype(np.int16)

    @property
    def spoken(self) -> list[str]:
        """Every sentence the bot synthesized, in order."""
        return self.tts.spoken
