"""How soon words over the bot start a barge-in: ``python benchmarks/speech_start.py``.

The barge-in target (``clear`` within 200 ms of the caller's onset) is mostly the time the call
takes to decide that speech started: the WebRTC VAD, the line's noise gate
(:class:`phoneactors.noise.NoiseGate`) and the segmenter's start rule
(:class:`phoneactors.segmenter.SpeechSegmenter`). This script replays exactly those, offline and
frame by frame, so a change to them can be measured in a minute instead of a server run:

* each voice (``--voices``: ``hibari``, ``piper``, ``espeak:VOICE``, as in ``turn_taking.py``)
  first says three complete phrases, so the segmenter knows the caller's level, as it does
  after a caller's first turns;
* then every interruption and short answer of ``benchmarks/phrases.py`` (``INTERRUPTIONS``,
  ``EARLY_ANSWERS``; ``--held-out``: the held-out sets) is said while the bot replies, each
  after 1.5 s of the line alone, trimmed to its first voiced frame as ``turn_taking.py``
  sends it, and aligned to the call's 20 ms frames;
* on each line of ``--lines`` (``clean``: digital silence between words; a number: white hiss
  at that dBFS; ``pink-45``: pink hiss), through 8 kHz μ-law.

"start" is when the frame on which *speech started* is sent, after the clip's first frame (a
frame goes every 20 ms, as ``turn_taking.py`` sends them and measures ``clear``): the server
adds its own few ms (the frame's trip through the actors and the ``clear`` out). Also
counted, per line: false starts on 20 s of the line alone, on 20 s of four people talking in
the caller's room ``--room`` dB (default 20) under the caller's level, and on coughs,
breaths, knocks and clicks over the bot (those start speech by design, the bot pauses and
resumes; clicks should not). The slowest clips are listed with a letter for each of their
first frames: what the VAD and the gate took it for.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trio
from callers import dbfs, make_voice, speak
from harness import machine, percentile
from phrases import (
    COMPLETE,
    EARLY_ANSWERS,
    HELD_OUT_EARLY_ANSWERS,
    HELD_OUT_INTERRUPTIONS,
    INTERRUPTIONS,
)
from turn_taking import ROOM_TALK, ROOM_TALKERS, SOUNDS

from phoneactors import sounds
from phoneactors.audio import FRAME_MS, FRAME_SAMPLES, PCM, SAMPLE_RATE, ulaw_decode, ulaw_encode
from phoneactors.engines.base import TextToSpeech
from phoneactors.engines.webrtc import WebRtcVad
from phoneactors.noise import NoiseGate
from phoneactors.segmenter import SegmenterSettings, SpeechBegan, SpeechEnded, SpeechSegmenter

GAP_S = 1.5
"""The line alone before each clip: the utterance before it has ended, and the gate has the
floor."""
SLOW_MS = 200
"""Starts later than this after the clip's first frame are listed."""
ALONE_S = 20.0


@dataclass
class Line:
    """One caller on one line: the call's VAD, gate and segmenter, fed frame by frame."""

    noise: str
    rng: np.random.Generator
    vad: object = field(init=False)
    gate: NoiseGate = field(default_factory=NoiseGate)
    segmenter: SpeechSegmenter = field(
        default_factory=lambda: SpeechSegmenter(SegmenterSettings(pause_ms=0))
    )
    trace: list[str] = field(default_factory=list)
    """Per frame of the last clip: ``c`` voiced and clear of the gate, ``v`` voiced, ``g`` over
    the gate but not voiced, ``.`` neither."""

    def __post_init__(self) -> None:
        self.vad = WebRtcVad().new_detector()

    def under(self, audio: PCM) -> PCM:
        """``audio`` with the line's noise under it, through μ-law."""
        mixed = audio.astype(np.float64)
        if self.noise != "clean":
            color = "pink" if self.noise.startswith("pink") else "white"
            level = float(self.noise.removeprefix("pink"))
            noise = sounds.hiss(len(audio) / SAMPLE_RATE, dbfs=level, rng=self.rng, color=color)
            mixed = mixed + noise
        clipped = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
        return ulaw_decode(ulaw_encode(clipped))

    def feed(self, audio: PCM, *, replying: bool) -> list[tuple[int, object]]:
        """Feed ``audio`` (whole frames) through the line; the events, by frame index."""
        line = self.under(audio)
        events = []
        self.trace = []
        for index in range(len(line) // FRAME_SAMPLES):
            frame = line[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
            voiced = self.vad.is_speech(frame)  # type: ignore[attr-defined]
            over = self.gate.measure(frame)  # as the call's VAD actor does
            clear = voiced and over
            self.trace.append("c" if clear else "v" if voiced else "g" if over else ".")
            event = self.segmenter.feed(frame, voiced, replying=replying, clear=clear, over=over)
            if event is not None:
                events.append((index, event))
        return events

    def quiet(self, seconds: float, *, replying: bool) -> list[tuple[int, object]]:
        return self.feed(
            np.zeros(round(seconds * 1000) // FRAME_MS * FRAME_SAMPLES, np.int16), replying=replying
        )


def frames(audio: PCM) -> PCM:
    """``audio`` padded with zeros to whole 20 ms frames."""
    return np.concatenate([audio, np.zeros(-len(audio) % FRAME_SAMPLES, np.int16)])


def started(events: list[tuple[int, object]]) -> int | None:
    return next((i for i, e in events if isinstance(e, SpeechBegan)), None)


@dataclass
class Measured:
    starts: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    alone: int = 0
    room: int = 0
    sounds: dict[str, tuple[int, int]] = field(default_factory=dict)


class Voice:
    """A caller's voice, whose clips are kept in ``cache`` (a folder) when one is given: two runs
    (before and after a change) then hear the same audio, though Piper's varies from one
    synthesis to the next."""

    def __init__(self, name: str, cache: Path | None) -> None:
        self.name, self.cache = name, cache
        self._voice: TextToSpeech | None = None

    async def say(self, text: str) -> PCM:
        path = None
        if self.cache is not None:
            key = hashlib.sha256(f"{self.name}\n{text}".encode()).hexdigest()[:16]
            path = self.cache / f"{key}.npy"
            if path.exists():
                return np.load(path)
        if self._voice is None:
            self._voice = await make_voice(self.name)
        audio = await speak(self._voice, text)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, audio)
        return audio


async def measure(
    voice: Voice, noise: str, phrases: Sequence[str], repeats: int, room_db: float, seed: int
) -> Measured:
    line = Line(noise, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    result = Measured()
    line.quiet(GAP_S, replying=False)
    first = [await voice.say(text) for text in COMPLETE[:3]]
    for audio in first:  # the caller's first turns set their level
        line.feed(frames(audio), replying=False)
        line.quiet(GAP_S, replying=False)
    talk = [await voice.say(text) for text in ROOM_TALK]
    room = sounds.babble(
        talk,
        ALONE_S,
        dbfs=float(np.median([dbfs(a) for a in first])) - room_db,
        rng=rng,
        talkers=ROOM_TALKERS,
    )
    clips = {text: frames(await voice.say(text)) for text in phrases}
    for text in tuple(phrases) * repeats:
        clip = clips[text]
        index = started(line.feed(clip, replying=True))
        if index is None:
            result.missed.append(text)
        else:
            ms = index * FRAME_MS
            result.starts.append(ms)
            if ms > SLOW_MS:
                result.slow.append(f"{text!r} {ms} ms: {''.join(line.trace[: index + 1])}")
        ended = line.quiet(GAP_S, replying=False)
        if line.segmenter.speaking or not any(isinstance(e, SpeechEnded) for _, e in ended):
            line.quiet(2.0, replying=False)
    result.alone = sum(isinstance(e, SpeechBegan) for _, e in line.quiet(ALONE_S, replying=True))
    result.room = sum(isinstance(e, SpeechBegan) for _, e in line.feed(room, replying=True))
    line.quiet(GAP_S, replying=False)
    for kind, make in SOUNDS.items():
        count = 0
        for _ in range(6):
            count += started(line.feed(frames(make(rng)), replying=True)) is not None
            line.quiet(GAP_S, replying=False)
        result.sounds[kind] = (count, 6)
    return result


def report(voice: str, noise: str, m: Measured) -> None:
    starts = m.starts
    stats = (
        f"{percentile(starts, 50):.0f} / {percentile(starts, 95):.0f} / {max(starts):.0f}"
        if starts
        else "-"
    )
    heard = ", ".join(f"{k} {n}/{of}" for k, (n, of) in m.sounds.items())
    print(
        f"| {voice} | {noise} | {len(starts)} of {len(starts) + len(m.missed)} | {stats} | "
        f"{sum(s > SLOW_MS for s in starts)} | {m.alone} | {m.room} | {heard} |"
    )


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="hibari,piper")
    parser.add_argument("--lines", default="clean,-45,-40")
    parser.add_argument("--held-out", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="each phrase this many times")
    parser.add_argument("--room", type=float, default=20.0, metavar="DB")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--cache", type=Path, default=None, metavar="DIR", help="keep the voices' clips here"
    )
    args = parser.parse_args(argv)
    phrases = (
        (*HELD_OUT_INTERRUPTIONS, *HELD_OUT_EARLY_ANSWERS)
        if args.held_out
        else (*INTERRUPTIONS, *EARLY_ANSWERS)
    )
    print(machine())
    print(
        f"{len(phrases)} phrases over the bot, {args.repeats} times each, a voice and line "
        "(each time through new hiss); start after the clip's first frame\n"
    )
    print(
        "| voice | line | started | start p50 / p95 / max (ms) | over 200 ms | "
        f"starts on {ALONE_S:g} s: the line alone | the room | sounds that started speech |"
    )
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    for voice in args.voices.split(","):
        caller = Voice(voice, args.cache)
        for noise in args.lines.split(","):
            m = await measure(caller, noise, phrases, args.repeats, args.room, args.seed)
            report(voice, noise, m)
            notes += [f"{voice}, {noise}: {s}" for s in m.slow]
            notes += [f"{voice}, {noise}: {t!r} never started" for t in m.missed]
    if notes:
        print(
            "\nslow or missed, a letter a frame (c: voiced and over the gate, v: voiced only, "
            "g: over the gate only, .: neither):"
        )
        for note in notes:
            print(f"  {note}")


if __name__ == "__main__":
    trio.run(main)
