"""Turn-taking of a real server with real speech, measured black-box.

    python benchmarks/turn_taking.py [--voices hibari,piper] [--limit N] [-- server options…]

``--voices`` also takes ``espeak:VOICE`` (an espeak-ng voice, e.g. ``espeak:en-us+m3``: a caller
unlike the two neural voices), ``hibari@SPEED`` and ``piper@LENGTH`` (a slower or faster
caller; Piper's length scale over 1 is slower).

Starts ``python -m phoneactors`` (the parrot, default offline engines) in a subprocess and calls
it over a real websocket with Twilio's JSON at real-time pace (:class:`FakeTwilio`), the caller's
speech synthesized beforehand by the named voices from ``benchmarks/phrases.py``:

* **complete phrases**: voice-to-voice, from the caller's last voiced frame sent to the bot's
  first voiced audio received (as ``voice_to_voice.py`` counts it).
* **fragments**: the caller says a fragment that trails off ("I'd like to book a table for"),
  is silent for ``--pause`` seconds (1.0), then says the rest. *Premature* = the bot sent any
  audio before the rest began; *one turn* = the parrot answered once, with the whole sentence.
* **false interruptions**: 1.5 s into a long reply, the caller makes a sound that is no
  interruption: a backchannel from the phrase set, or a synthetic cough, breath, knock or
  click (:mod:`phoneactors.sounds`). Measured: ``clear`` after the sound began; whether it
  was answered as a turn; if not, the first resumed audio after the sound's last frame; and
  what the caller heard of the reply, transcribed (faster-whisper, in this process) against
  the reply's text: words missing, and words heard twice (the rewind). The row "none" is the
  baseline: the same reply with nothing said over it (what the transcription itself misses).
* ``--line-noise -45`` puts white hiss at that level under everything the caller sends
  (``--line-color pink``: pink noise, a duller rumble).
* ``--caller-gain -15`` makes the caller 15 dB quieter than the voices speak (speech and
  sounds alike: a caller far from the microphone); positive, louder, clipped at full scale.
  Each phrase is cut to its voiced frames at the voice's own level, then made quieter.
* ``--room 15`` puts other people talking (``--room-talkers``, default 4;
  :func:`phoneactors.sounds.babble`, from ``ROOM_TALK`` said by both voices) under everything
  the caller sends, 15 dB under the caller's own level: a café or an office. A turn with no
  answer within 15 s is counted unanswered.
* **replies paused during the answers to complete phrases**: ``clear`` sent during the
  replies to the complete phrases, which the caller waits out in silence: the line's noise or
  the room interrupting the bot (each is listed, "while silent"; one sent while the phrase was
  still being said, "as the caller spoke", is a reply begun at a pause inside it).
  ``--server-log FILE`` keeps the server's log.
* **real interruptions**: 1.5 s into a long reply, the caller says an interruption from the
  phrase set: ``clear`` after the interruption began, and the old reply's audio after it
  (stale audio) until the reply played on, if the call took the words for a false
  interruption ("Stop." heard as no words): those are counted and listed on their own.
* **short answers over a reply** ("Sales.", "Tomorrow."; ``EARLY_ANSWERS``): real
  interruptions with no word that interrupts, often one the engine is unsure of; each should
  end the reply and be answered as a turn.
"""

from __future__ import annotations

import argparse
import difflib
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trio
from callers import dbfs, louder, make_voice, speak
from harness import machine, running_server, summary_row
from phrases import (
    BACKCHANNELS,
    COMPLETE,
    EARLY_ANSWERS,
    FRAGMENTS,
    HELD_OUT_EARLY_ANSWERS,
    HELD_OUT_SETS,
    INTERRUPTIONS,
    add_held_out_option,
)
from voice_to_voice import one_turn

from phoneactors import sounds
from phoneactors.audio import PCM, SAMPLE_RATE
from phoneactors.engines import as_transcription
from phoneactors.engines.faster_whisper import FasterWhisperSTT
from phoneactors.testing import FakeTwilio, open_twilio_stream
from phoneactors.twilio import SendMark, SendMedia
from phoneactors.wer import normalise

LONG_QUESTION = "Could you read me the opening hours of every branch, weekends included?"
ROOM_TALK = (
    "I think the train was late again this morning.",
    "Could you pass me the menu, please?",
    "We should meet at the station after work.",
    "No, he never called me back about that.",
    "The weather has been really strange this week.",
    "Do you want to get coffee after the meeting?",
)
"""What other people in the caller's room say (``--room``): none of it a caller's phrase."""
ROOM_TALKERS = 4
TURN_GIVE_UP_S = 15.0
"""A complete phrase or a fragment with no answer this long after it is counted unanswered
and the run goes on (in a noisy room a turn may not end)."""
REPLY_GIVE_UP_S = 45.0
"""A long reply with a sound over it that has not ended after this long is noted, and the
run goes on."""
"""The parrot answers with it, so its reply is long enough to talk over."""
SOUNDS: dict[str, Callable[[np.random.Generator], PCM]] = {
    "cough": lambda rng: sounds.cough(rng),
    "breath": lambda rng: sounds.breath(rng, dbfs=-30.0),
    "knock": lambda rng: sounds.knock(rng),
    "click": lambda rng: sounds.click(rng),
}
OVER_AFTER = 1.5
"""Seconds into the reply at which the caller makes a sound or interrupts."""
RESUME_TARGET_S = 0.6
"""The issue's target for a resume after a false interruption: slower ones are listed."""
CLEAR_TARGET_S = 0.2
"""The barge-in target: ``clear`` within 200 ms of an interruption's onset (slower: listed)."""


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    premature: list[str] = field(default_factory=list)
    fragments: int = 0
    split_turns: list[str] = field(default_factory=list)
    clears: dict[str, list[float]] = field(default_factory=dict)
    resumes: dict[str, list[float]] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    not_resumed: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    repeated: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stale: list[float] = field(default_factory=list)
    interrupt_clears: list[float] = field(default_factory=list)
    played_on: list[str] = field(default_factory=list)
    """Real interruptions the call took for a false one (a cough, a backchannel): the reply
    played on after them."""
    answers: int = 0
    answers_missed: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    """Complete phrases and fragments the bot had not answered within ``TURN_GIVE_UP_S``."""
    silent_pauses: list[str] = field(default_factory=list)
    """Complete phrases whose reply was cleared while the caller waited for it in silence."""


def media_after(fake: FakeTwilio, index: int) -> list[tuple[float, bytes]]:
    return [(t, e.payload) for t, e in fake.outbound[index:] if isinstance(e, SendMedia)]


def replies_since(fake: FakeTwilio, index: int) -> set[str]:
    """The replies the bot sent audio of, by their marks, since outbound event ``index``."""
    return {e.name.rpartition(".")[0] for _, e in fake.outbound[index:] if isinstance(e, SendMark)}


def word_diff(expected: str, heard: str) -> tuple[int, int]:
    """(words of ``expected`` missing from ``heard``, words of ``heard`` beyond ``expected``)."""
    want, got = normalise(expected), normalise(heard)
    matcher = difflib.SequenceMatcher(a=want, b=got, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return len(want) - matched, len(got) - matched


async def fragment(fake: FakeTwilio, first: PCM, rest: PCM, pause: float) -> tuple[bool, int]:
    """(bot audio before the rest began, replies that followed)."""
    sent = len(fake.outbound)
    await fake.play(first)
    await fake.silence(pause)
    premature = bool(media_after(fake, sent))
    await fake.play(rest)
    await fake.wait_for_bot_to_finish()
    await fake.silence(0.3)
    return premature, len(replies_since(fake, sent))


async def over_the_reply(
    fake: FakeTwilio, question: PCM, sound: PCM
) -> tuple[float | None, float | None, bool, PCM]:
    """Ask, then make ``sound`` 1.5 s into the reply. Returns (clear after the sound began,
    first resumed audio after it ended, answered as a turn, the reply's audio as played)."""
    await fake.play(question)
    played, sent, clears = len(fake.played), len(fake.outbound), len(fake.clears)
    await fake.wait_for(lambda: len(fake.played) > played)
    await trio.sleep_until(fake.played[played].start + OVER_AFTER)
    began = trio.current_time() + 0.02  # the sound's first frame goes at the next tick
    await fake.play(sound)
    ended = trio.current_time()
    await fake.wait_for_bot_to_finish(quiet=1.0)
    clear = fake.clears[clears] - began if len(fake.clears) > clears else None
    later = [p.start for p in fake.played[played:] if p.start >= ended]
    resumed = later[0] - ended if later and clear is not None else None
    replies = replies_since(fake, sent)
    audio = np.concatenate([p.audio for p in fake.played[played:]])
    return clear, resumed, len(replies) > 1, audio


async def interrupt(
    fake: FakeTwilio, question: PCM, words: PCM
) -> tuple[float, float, float | None, str]:
    """Ask, then say ``words`` 1.5 s into the reply. Returns (``clear`` after the words began,
    seconds of stale audio, seconds from the ``clear`` until the reply played on when the call
    took the words for a false interruption, and when either happened, what the bot sent from
    the ``clear`` on)."""
    await fake.play(question)
    played, clears = len(fake.played), len(fake.clears)
    await fake.wait_for(lambda: len(fake.played) > played)
    await trio.sleep_until(fake.played[played].start + OVER_AFTER)
    began = trio.current_time() + 0.02
    await fake.play(words, wait=False)
    await fake.wait_for(lambda: len(fake.clears) > clears)
    reaction = fake.clears[clears] - began
    await fake.wait_for_bot_to_finish(quiet=1.0)
    played_on = fake.played_on_after_clear(clears)
    stale = fake.stale_audio_after_clear(clears)
    sent = sent_after(fake, fake.clears[clears]) if stale or played_on else ""
    return reaction, stale, None if played_on is None else played_on - fake.clears[clears], sent


def sent_after(fake: FakeTwilio, at: float, seconds: float = 1.5) -> str:
    """What the bot sent in the ``seconds`` after ``at``: ms after it, then a mark's name,
    ``clear``, or the ms of audio."""
    said = []
    for t, event in fake.outbound:
        if at <= t <= at + seconds:
            if isinstance(event, SendMedia):
                what = f"{len(event.payload) * 1000 // SAMPLE_RATE} ms audio"
            else:
                what = getattr(event, "name", type(event).__name__)
            said.append(f"+{(t - at) * 1000:.0f} {what}")
    return ", ".join(said)


async def measure(
    url: str,
    voices: Sequence[str],
    limit: int,
    pause: float,
    line_noise: float | None,
    sounds_each: int,
    held_out: int = 0,
    room_db: float | None = None,
    room_talkers: int = ROOM_TALKERS,
    caller_gain: float = 0.0,
    line_color: str = "white",
) -> Results:
    results = Results()
    stt = FasterWhisperSTT(limiter=trio.CapacityLimiter(2))
    await stt.load()
    rng = np.random.default_rng(2026)
    room_talk = []
    if room_db is not None:
        room_talk = [await speak(await make_voice(n), t) for n in voices for t in ROOM_TALK]
    for name in voices:
        voice = await make_voice(name)
        texts, fragments = HELD_OUT_SETS[held_out] if held_out else (COMPLETE, FRAGMENTS)
        complete = [await speak(voice, t, caller_gain) for t in texts[:limit]]
        pairs = [
            (f, await speak(voice, f, caller_gain), await speak(voice, r, caller_gain))
            for f, r in fragments[:limit]
        ]
        question = await speak(voice, LONG_QUESTION, caller_gain)
        quiet = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)
        asides = [("none", quiet)] * 2  # the baseline: what transcribing a whole reply misses
        asides += [(b, await speak(voice, b, caller_gain)) for b in BACKCHANNELS[:limit]]
        asides += [
            (kind, louder(make(rng), caller_gain))
            for kind in SOUNDS
            for make in [SOUNDS[kind]] * sounds_each
        ]
        stops = [
            (t, await speak(voice, t, caller_gain)) for t in INTERRUPTIONS[: max(3, limit // 3)]
        ]
        answer_set = HELD_OUT_EARLY_ANSWERS if held_out else EARLY_ANSWERS
        answers = [
            (t, await speak(voice, t, caller_gain)) for t in answer_set[: max(4, limit // 2)]
        ]
        background = None
        if line_noise is not None and line_color != "white":  # looped under the call
            background = sounds.hiss(120.0, dbfs=line_noise, rng=rng, color="pink")
        if room_db is not None:
            caller_dbfs = float(np.median([dbfs(audio) for audio in complete]))
            seconds = 120.0  # looped under the call
            room = sounds.babble(
                room_talk, seconds, dbfs=caller_dbfs - room_db, rng=rng, talkers=room_talkers
            )
            background = room if background is None else sounds.mix(background, room, at_s=0.0)
        hiss = line_noise if line_color == "white" else None
        async with open_twilio_stream(url, line_noise_dbfs=hiss, background=background) as fake:
            await fake.wait_for_bot_to_finish()
            await fake.silence(0.5)
            for text, audio in zip(texts, complete, strict=False):
                clears, ends = len(fake.clears), trio.current_time() + len(audio) / SAMPLE_RATE
                try:
                    with trio.fail_after(TURN_GIVE_UP_S):
                        voiced, _first = await one_turn(fake, audio)
                except (trio.TooSlowError, AssertionError):
                    results.unanswered.append(f"{name}: {text}")
                    continue
                finally:
                    for at in fake.clears[clears:]:
                        when = "as the caller spoke" if at < ends else "while silent"
                        results.silent_pauses.append(f"{name}: {text} ({when})")
                results.latencies.append(voiced * 1000)
                await fake.silence(0.3)
            for text, first, rest in pairs:
                results.fragments += 1
                try:
                    with trio.fail_after(TURN_GIVE_UP_S + pause):
                        premature, replies = await fragment(fake, first, rest, pause)
                except (trio.TooSlowError, AssertionError):
                    results.unanswered.append(f"{name}: {text} (a fragment)")
                    continue
                if premature:
                    results.premature.append(f"{name}: {text}")
                if replies != 1:
                    results.split_turns.append(f"{name}: {text} ({replies} replies)")
            await over_replies(fake, results, stt, name, question, asides, stops, answers)
    return results


async def over_replies(
    fake: FakeTwilio,
    results: Results,
    stt: FasterWhisperSTT,
    name: str,
    question: PCM,
    asides: Sequence[tuple[str, PCM]],
    stops: Sequence[tuple[str, PCM]],
    answers: Sequence[tuple[str, PCM]],
) -> None:
    """Sounds, interruptions and short answers over a long reply (see the module docstring)."""
    reply = f'You said: "{LONG_QUESTION}"'
    for label, sound in asides:
        kind = label if label in (*SOUNDS, "none") else "backchannel"
        try:
            with trio.fail_after(REPLY_GIVE_UP_S):
                clear, resumed, answered, audio = await over_the_reply(fake, question, sound)
        except trio.TooSlowError:
            results.notes.append(f"{name}, {label!r}: reply not over in {REPLY_GIVE_UP_S:g} s")
            continue
        if clear is not None:
            results.clears.setdefault(kind, []).append(clear * 1000)
        if answered:  # the audio after the sound is the answer, not a resume
            pass
        elif resumed is not None:
            results.resumes.setdefault(kind, []).append(resumed * 1000)
        elif clear is not None:
            results.not_resumed[kind] = results.not_resumed.get(kind, 0) + 1
        if answered:
            results.answered[kind] = results.answered.get(kind, 0) + 1
        heard = as_transcription(await stt.transcribe(audio)).text
        missing, extra = word_diff(reply, heard)
        results.missing.setdefault(kind, []).append(missing)
        results.repeated.setdefault(kind, []).append(extra)
        if answered or missing > 2:
            results.notes.append(
                f"{name}, {label!r}: answered={answered} missing={missing}: {heard!r}"
            )
        elif resumed is not None and resumed > RESUME_TARGET_S:
            results.notes.append(f"{name}, {label!r}: resumed after {resumed * 1000:.0f} ms")
        await fake.silence(0.5)
    for text, words in stops:
        try:
            with trio.fail_after(REPLY_GIVE_UP_S):
                reaction, stale, played_on, sent = await interrupt(fake, question, words)
        except trio.TooSlowError:
            results.notes.append(f"{name}: interrupted reply not over in {REPLY_GIVE_UP_S:g} s")
            continue
        results.interrupt_clears.append(reaction * 1000)
        results.stale.append(stale * 1000)
        if reaction > CLEAR_TARGET_S:
            results.notes.append(f"{name}, {text!r}: clear {reaction * 1000:.0f} ms after onset")
        if stale:
            results.notes.append(f"{name}, {text!r}: {stale * 1000:.0f} ms stale audio: {sent}")
        if played_on is not None:
            results.played_on.append(
                f"{name}, {text!r}: played on {played_on * 1000:.0f} ms after the clear: {sent}"
            )
        await fake.silence(0.5)
    for text, words in answers:
        try:
            with trio.fail_after(REPLY_GIVE_UP_S):
                _clear, _resumed, answered, _audio = await over_the_reply(fake, question, words)
        except trio.TooSlowError:
            answered = False
        results.answers += 1
        if not answered:
            results.answers_missed.append(f"{name}: {text}")
        await fake.silence(0.5)


def report(results: Results, turns: list[dict[str, float]], pause: float) -> None:
    print("| measure | median | p95 | min | max | n |")
    print("|---|---|---|---|---|---|")
    print(summary_row("voice-to-voice on complete phrases", results.latencies))
    if results.unanswered:
        print(f"unanswered within {TURN_GIVE_UP_S:g} s: {len(results.unanswered)}")
        for line in results.unanswered:
            print(f"- unanswered: {line}")
    print(f"replies paused during the answers to complete phrases: {len(results.silent_pauses)}")
    for line in results.silent_pauses:
        print(f"- paused: {line}")
    for stage in ("end_of_speech", "stt", "reply", "tts", "total"):
        values = [t[stage] for t in turns if stage in t]
        print(summary_row(f"  server, every turn: {stage}", values))
    print(summary_row("real interruption → clear", results.interrupt_clears))
    print(summary_row("  interrupted reply's audio after clear", results.stale))
    print(
        f"real interruptions taken for a false one (the reply played on): "
        f"{len(results.played_on)} of {len(results.interrupt_clears)}"
    )
    for line in results.played_on:
        print(f"- played on: {line}")
    print()
    total, whole = results.fragments, results.fragments - len(results.split_turns)
    print(
        f"fragments + a {pause:g} s pause + the rest: premature replies "
        f"{len(results.premature)} of {total}; answered as one turn {whole} of {total}"
    )
    for line in results.premature:
        print(f"- premature: {line}")
    for line in results.split_turns:
        print(f"- not one turn: {line}")
    print()
    print(
        "| sound over a reply | n | clear after onset, p50 / p95 | resumed after its end, "
        "p50 / p95 / max | not resumed | answered as a turn | words missing (mean) | "
        "words repeated (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in ["none", "backchannel", *SOUNDS]:
        missing = results.missing.get(kind, [])
        if not missing:
            continue
        clears = results.clears.get(kind, [])
        resumes = results.resumes.get(kind, [])

        def p(values: list[float], q: float) -> str:
            return f"{float(np.percentile(values, q)):.0f}" if values else "-"

        print(
            f"| {kind} | {len(missing)} | {p(clears, 50)} / {p(clears, 95)} ms "
            f"| {p(resumes, 50)} / {p(resumes, 95)} / {p(resumes, 100)} ms "
            f"| {results.not_resumed.get(kind, 0)} | {results.answered.get(kind, 0)} "
            f"| {statistics.mean(missing):.1f} | {statistics.mean(results.repeated[kind]):.1f} |"
        )
    for note in results.notes:
        print(f"- {note}")
    print()
    heard = results.answers - len(results.answers_missed)
    print(f"short answers over a reply: answered as a turn {heard} of {results.answers}")
    for line in results.answers_missed:
        print(f"- played on over: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--voices",
        default="hibari",
        help="comma-separated: hibari, piper, espeak:VOICE (hibari@SPEED, piper@LENGTH)",
    )
    parser.add_argument("--limit", type=int, default=20, help="phrases of each kind per voice")
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds between fragment and rest"
    )
    parser.add_argument("--sounds", type=int, default=3, help="of each kind of sound, per voice")
    parser.add_argument(
        "--line-noise", type=float, default=None, metavar="DBFS", help="hiss under the caller"
    )
    parser.add_argument(
        "--room",
        type=float,
        default=None,
        metavar="DB",
        help="other people talking under the caller, this many dB quieter",
    )
    parser.add_argument("--room-talkers", type=int, default=ROOM_TALKERS, metavar="N")
    parser.add_argument(
        "--line-color",
        choices=("white", "pink"),
        default="white",
        help="the colour of --line-noise (pink: a duller rumble, see phoneactors.sounds.hiss)",
    )
    parser.add_argument(
        "--caller-gain",
        type=float,
        default=0.0,
        metavar="DB",
        help="the caller (speech and sounds) this many dB louder; negative: a quiet caller",
    )
    parser.add_argument(
        "--server-log", type=Path, default=None, metavar="FILE", help="write the server's log here"
    )
    add_held_out_option(parser)
    parser.add_argument("server_args", nargs="*", help="options for python -m phoneactors")
    args = parser.parse_args()
    if args.line_color != "white" and args.line_noise is None:
        parser.error("--line-color needs --line-noise (its level)")
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    with running_server("--log-level", "INFO", *args.server_args) as server:
        results = trio.run(
            measure,
            server.ws_url,
            voices,
            args.limit,
            args.pause,
            args.line_noise,
            args.sounds,
            args.held_out,
            args.room,
            args.room_talkers,
            args.caller_gain,
            args.line_color,
        )
        turns = [t for t in server.turn_lines() if "total" in t]
    if args.server_log is not None:
        args.server_log.write_text("".join(f"{line}\n" for line in server.log))
    print(f"machine: {machine()}")
    print(f"server: python -m phoneactors {' '.join(args.server_args)}".rstrip())
    print(f"caller voices: {', '.join(voices)}; {args.limit} phrases of each kind per voice")
    if args.held_out:
        print(f"phrases: held-out set {args.held_out} (benchmarks/phrases.py)")
    if args.line_noise is not None:
        print(f"the caller's line hisses at {args.line_noise:g} dBFS ({args.line_color} noise)")
    if args.caller_gain:
        print(f"the caller is {args.caller_gain:+g} dB louder than the voices speak")
    if args.room is not None:
        print(f"{args.room_talkers} people talk in the room, {args.room:g} dB under the caller")
    print()
    report(results, turns, args.pause)


if __name__ == "__main__":
    main()
