"""How a short sound over the bot is taken: ``python benchmarks/backchannels.py``.

When the caller says something while the bot talks, the call pauses the reply and lets the
transcript decide: a backchannel ("Uh-huh.", "Yeah.") or no words resume the reply; anything
else interrupts it. Whisper tiny.en often mishears a backchannel ("Mm-hmm." as "and then",
"Uh-huh." as "It has."), so a short transcript it was unsure of gets a second look, told to
expect backchannels (:func:`phoneactors.backchannel.may_be_misheard_backchannel`,
``FasterWhisperSTT.transcribe_hinted``). This script measures both steps, offline, on
``BACKCHANNELS``, ``INTERRUPTIONS``, ``EARLY_ANSWERS`` (short answers over the bot:
"Sales.", "Tomorrow.") and ``FUNCTION_WORD_QUESTIONS`` ("Are you there?") of
``benchmarks/phrases.py``:

* each phrase is spoken by hibari, Piper (when installed) and, when ``espeak-ng`` is on the
  PATH, eight espeak-ng voices (robotic, and much harder for Whisper: the worst case);
* sent through 8 kHz μ-law with quiet line hiss, and cut into an utterance by the WebRTC VAD
  and the call's own segmenter, so the audio (pre-roll and trailing quiet included) is what
  a call transcribes;
* then judged as the call judges it: no words (:func:`phoneactors.nonspeech.words_heard`), a
  backchannel or only a filler ("Uh.") resume; an unclear short transcript is transcribed
  again with the hint, and resumes when that hears a backchannel, or when neither reading
  holds a word that interrupts or one with content (``Conversation.unclear_sounds_play_on``,
  the default), by the call's own :class:`~phoneactors.second_look.SecondLook`.

"resumed" should be high for backchannels and low for the rest (an
interruption taken for a backchannel costs the caller one more word: the bot pauses again at
once; an answer taken for one is not heard until the caller says it again). The table
lists every clip the second look changed, and every miss.

Options: ``--voices`` (default ``hibari,piper,espeak``), ``--espeak-voices`` (comma-separated
espeak-ng voice names), ``--held-out`` (``HELD_OUT_BACKCHANNELS``,
``HELD_OUT_INTERRUPTIONS`` and ``HELD_OUT_EARLY_ANSWERS``, written after the rules were
fitted).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trio
from end_of_turn import load_voice
from harness import machine, percentile
from phrases import (
    BACKCHANNELS,
    EARLY_ANSWERS,
    FUNCTION_WORD_QUESTIONS,
    HELD_OUT_BACKCHANNELS,
    HELD_OUT_EARLY_ANSWERS,
    HELD_OUT_INTERRUPTIONS,
    INTERRUPTIONS,
)

from phoneactors.audio import FRAME_SAMPLES, PCM, float_to_pcm, resample, ulaw_decode, ulaw_encode
from phoneactors.endpointing import is_backchannel, is_only_fillers
from phoneactors.engines.faster_whisper import FasterWhisperSTT
from phoneactors.engines.webrtc import WebRtcVad
from phoneactors.messages import Transcription
from phoneactors.nonspeech import words_heard
from phoneactors.second_look import SecondLook
from phoneactors.segmenter import SegmenterSettings, SpeechEnded, SpeechSegmenter

KINDS = {
    "backchannel": "backchannels",
    "interruption": "interruptions",
    "answer": "answers over the bot",
    "question": "questions of function words",
}
"""What each set of phrases is (and its name in the table): the first should resume, the
others interrupt."""
ESPEAK_VOICES = (
    "en-us",
    "en-us+f2",
    "en-us+m3",
    "en-gb+f4",
    "en-gb-scotland",
    "en-029",
    "en-us+m7",
    "en-gb-x-rp+f3",
)
HISS = 20.0
"""Line hiss, as int16 standard deviation (about -64 dBFS)."""


@dataclass(frozen=True)
class Taken:
    kind: str
    said: str
    voice: str
    heard: str
    again: str | None
    """What the second look heard, when there was one."""
    first: bool
    """Resumed on the first transcript (no words, a backchannel, or only a filler)."""
    resumed: bool
    seconds: float
    second_look_s: float | None


def espeak(voice: str, text: str) -> PCM:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "say.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
        with wave.open(str(path)) as wav:
            rate = wav.getframerate()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return float_to_pcm(resample(data, rate, 8000))


def utterance(audio: PCM, rng: np.random.Generator) -> PCM | None:
    """``audio`` over a phone line, as the call's segmenter hands it to the transcriber (the
    utterances it found, joined), or ``None`` when the VAD heard no speech."""
    hiss = rng.normal(0, HISS, 8000 + len(audio) + 8000)
    hiss[8000 : 8000 + len(audio)] += audio
    line = ulaw_decode(ulaw_encode(np.clip(hiss, -32768, 32767).astype(np.int16)))
    segmenter = SpeechSegmenter(SegmenterSettings(pause_ms=0))
    vad = WebRtcVad().new_detector()
    found = []
    for start in range(0, len(line) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = line[start : start + FRAME_SAMPLES]
        event = segmenter.feed(frame, vad.is_speech(frame))
        if isinstance(event, SpeechEnded):
            found.append(event.audio)
    return np.concatenate(found) if found else None


class Recorded:
    """The engine, noting what each second look heard and how long it took."""

    def __init__(self, stt: FasterWhisperSTT) -> None:
        self.stt = stt
        self.name = stt.name
        self.again: str | None = None
        self.took: float | None = None

    async def load(self) -> None:
        await self.stt.load()

    async def transcribe(self, audio: PCM) -> Transcription:
        return await self.stt.transcribe(audio)

    async def transcribe_hinted(self, audio: PCM, hint: str) -> Transcription:
        started = time.perf_counter()
        result = await self.stt.transcribe_hinted(audio, hint)
        self.took = time.perf_counter() - started
        self.again = result.text
        return result


async def take(stt: FasterWhisperSTT, kind: str, said: str, voice: str, audio: PCM) -> Taken:
    """Judge one sound over the bot as the call does (``Responder.heard_over_reply``, with the
    call's own :class:`~phoneactors.second_look.SecondLook`)."""
    result = await stt.transcribe(audio)
    heard = words_heard(result, audio)
    seconds = len(audio) / 8000
    first = not heard or is_backchannel(heard) or is_only_fillers(heard)
    recorded = Recorded(stt)
    resumed = first
    if not first:
        looks = SecondLook(recorded, is_backchannel, log=lambda _: None, warn=print)
        verdict = await looks.take(heard, audio, result.avg_logprob, unclear_plays_on=True)
        resumed = verdict is not None  # Conversation.unclear_sounds_play_on, the default
    return Taken(kind, said, voice, heard, recorded.again, first, resumed, seconds, recorded.took)


def report(taken: list[Taken]) -> None:
    groups = {
        "TTS voices": [t for t in taken if not t.voice.startswith("espeak")],
        "espeak-ng voices": [t for t in taken if t.voice.startswith("espeak")],
    }
    kinds = [kind for kind in KINDS if any(t.kind == kind for t in taken)]
    print(
        "| voices | "
        + " | ".join(f"{KINDS[kind]} resumed: first look | with the second" for kind in kinds)
        + " |"
    )
    print("|---|" + "---|---|" * len(kinds))
    for name, group in groups.items():
        if not group:
            continue
        cells = []
        for kind in kinds:
            clips = [t for t in group if t.kind == kind]
            cells += [
                f"{sum(t.first for t in clips)} of {len(clips)}",
                f"{sum(t.resumed for t in clips)} of {len(clips)}",
            ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for kind in KINDS:
        seconds = [t.seconds for t in taken if t.kind == kind and t.seconds]
        if seconds:
            print(
                f"\n{kind} utterances (audio as transcribed): {min(seconds):.2f} to "
                f"{max(seconds):.2f} s, median {percentile(seconds, 50):.2f} s",
                end="",
            )
    print()
    looks = [t.second_look_s * 1000 for t in taken if t.second_look_s is not None]
    if looks:
        print(
            f"\nsecond looks: {len(looks)} of {len(taken)} clips, p50 "
            f"{percentile(looks, 50):.0f} ms, p95 {percentile(looks, 95):.0f} ms"
        )
    print("\nChanged by the second look, and misses:")
    for t in taken:
        wrong = t.resumed != (t.kind == "backchannel")
        if t.again is not None or wrong:
            mark = "MISS" if wrong else "ok"
            again = "" if t.again is None else f" → again {t.again!r}"
            print(
                f"  {mark:4} {t.kind:12} {t.voice:22} {t.said!r:28} heard {t.heard!r}{again}"
                f" ({t.seconds:.2f} s)"
            )


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--voices", default="hibari,piper,espeak")
    parser.add_argument("--espeak-voices", default=",".join(ESPEAK_VOICES))
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="HELD_OUT_BACKCHANNELS, HELD_OUT_INTERRUPTIONS and HELD_OUT_EARLY_ANSWERS instead "
        "(written after the rules were fitted)",
    )
    args = parser.parse_args(argv)
    sets = (
        (HELD_OUT_BACKCHANNELS, HELD_OUT_INTERRUPTIONS, HELD_OUT_EARLY_ANSWERS, ())
        if args.held_out
        else (BACKCHANNELS, INTERRUPTIONS, EARLY_ANSWERS, FUNCTION_WORD_QUESTIONS)
    )
    print(f"machine: {machine()}\n")
    limiter = trio.CapacityLimiter(2)
    stt = FasterWhisperSTT(limiter=limiter)
    await stt.load()
    rng = np.random.default_rng(7)
    speakers: list[tuple[str, object]] = []
    for name in filter(None, (n.strip() for n in args.voices.split(","))):
        if name == "espeak":
            if shutil.which("espeak-ng") is None:
                print("espeak: espeak-ng is not on the PATH (apt-get install espeak-ng), skipped\n")
                continue
            speakers += [(f"espeak:{v}", v) for v in args.espeak_voices.split(",") if v]
            continue
        voice = await load_voice(name, limiter)
        if voice is not None:
            await voice.load()  # type: ignore[attr-defined]
            speakers.append((name, voice))
    taken: list[Taken] = []
    for kind, phrases in zip(KINDS, sets, strict=True):
        for said in phrases:
            for name, voice in speakers:
                if isinstance(voice, str):
                    audio = espeak(voice, said)
                else:
                    audio = await voice.synthesize(said)  # type: ignore[attr-defined]
                heard = utterance(np.asarray(audio, dtype=np.int16), rng)
                if heard is None:
                    taken.append(Taken(kind, said, name, "", None, True, True, 0.0, None))
                    continue
                taken.append(await take(stt, kind, said, name, heard))
    report(taken)


if __name__ == "__main__":
    trio.run(main)
