"""Voice-to-voice latency and barge-in reaction of a real server, measured black-box.

    python benchmarks/voice_to_voice.py [--turns 20] [--barge-ins 20] [-- server options…]

Starts ``python -m phoneactors`` (the parrot, default offline engines) in a subprocess and
calls it over a real websocket with Twilio's JSON, as Twilio would: one 20 ms μ-law frame every
20 ms, with real synthesized caller speech (hibari, made before the clock starts), and a
playback model that echoes marks when their audio has played and honours ``clear``
(:class:`phoneactors.testing.FakeTwilio`).

* **voice-to-voice**: the caller's last voiced frame sent → the bot's first *voiced* audio
  frame received (what the caller hears; a frame of the TTS engine's leading silence does not
  count), and → the bot's first audio frame of any kind. Includes the end-of-speech wait.
  The server's own per-turn breakdown (its log line
  ``turn: total=… end_of_speech=… stt=… reply=… tts=… send=…``) is summarised too.
* **barge-in**: the first frame of an interruption sent → ``clear`` received; and the audio of
  the interrupted reply that arrived after the ``clear`` (must be 0), up to the moment it
  played on if the call took the interruption for a cough or a backchannel (counted apart).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import trio
from harness import machine, running_server, summary_row

from phoneactors.audio import FRAME_SAMPLES, PCM, ulaw_decode
from phoneactors.engines.hibari import HibariTTS
from phoneactors.testing import FakeTwilio, open_twilio_stream
from phoneactors.twilio import SendMedia

QUESTIONS = [
    "What time do you open tomorrow?",
    "Can I book a table for two people tonight?",
    "Is the pharmacy open on Sunday?",
    "I would like to check my account balance please.",
    "How much is a ticket to the museum?",
    "Do you deliver to the north side of town?",
    "My order number is four five six seven.",
    "Could you repeat that please?",
]
LONG = (
    "Please tell me everything about the opening hours of every branch of the public library "
    "in the whole city, including the holidays and the summer schedule."
)
INTERRUPTIONS = ["Stop, stop.", "Wait a second.", "No, that is not what I meant."]


VOICED_RMS = 300.0
"""A 20 ms frame louder than this (int16 RMS, about -40 dBFS) is voiced, for caller and bot."""


def frame_rms(audio: PCM) -> list[float]:
    """The RMS of each whole 20 ms frame of ``audio``."""
    frames = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return [float(r) for r in np.sqrt(np.mean(frames.astype(float) ** 2, axis=1))]


def trim(audio: PCM) -> PCM:
    """Cut leading and trailing quiet frames, so the last frame sent is a voiced one."""
    first, last = voiced_span(audio)
    return audio[first:last]


def voiced_span(audio: PCM) -> tuple[int, int]:
    """The samples of ``audio`` from its first voiced 20 ms frame to the end of its last."""
    voiced = [i for i, r in enumerate(frame_rms(audio)) if r > VOICED_RMS]
    return voiced[0] * FRAME_SAMPLES, (voiced[-1] + 1) * FRAME_SAMPLES


def voiced_at(audio: PCM) -> float | None:
    """Seconds into ``audio`` where its first voiced 20 ms frame starts, if any."""
    voiced = [i for i, r in enumerate(frame_rms(audio)) if r > VOICED_RMS]
    return voiced[0] * FRAME_SAMPLES / 8000 if voiced else None


async def one_turn(fake: FakeTwilio, audio: PCM) -> tuple[float, float]:
    """Say ``audio``; seconds from its last frame sent to the bot's first voiced audio
    received, and to its first audio of any kind."""
    await fake.play(audio)
    last_voiced = trio.current_time()
    sent = len(fake.outbound)
    await fake.wait_for(lambda: any(isinstance(e, SendMedia) for _, e in fake.outbound[sent:]))
    first = next(t for t, e in fake.outbound[sent:] if isinstance(e, SendMedia))
    await fake.wait_for_bot_to_finish()
    # The reply plays from its first frame on, without gaps; chunks after the first arrive
    # ahead of their time (the pacer keeps a lead), so count audio, not arrival times.
    voiced, played = None, 0.0
    for _, event in fake.outbound[sent:]:
        if not isinstance(event, SendMedia):
            continue
        audio = ulaw_decode(event.payload)
        offset = voiced_at(audio)
        if offset is not None:
            voiced = first + played + offset
            break
        played += len(audio) / 8000
    assert voiced is not None, "the reply had no voiced audio"
    return voiced - last_voiced, first - last_voiced


async def one_barge_in(fake: FakeTwilio, long: PCM, interruption: PCM) -> tuple[float, float, bool]:
    """Talk over a long reply a second into it; (seconds to clear, stale seconds after it,
    whether the reply played on: the call took the interruption for a cough or a
    backchannel, and the audio it then sent is that decision, not stale audio)."""
    await fake.play(long)
    played = len(fake.played)
    await fake.wait_for(lambda: len(fake.played) >= played + 10)  # a second of the reply
    clears = len(fake.clears)
    started = trio.current_time() + 0.02  # the interruption's first frame goes at the next tick
    await fake.play(interruption, wait=False)
    await fake.wait_for(lambda: len(fake.clears) > clears)
    reaction = fake.clears[clears] - started
    await fake.wait_for_bot_to_finish()  # the reply to the interruption
    played_on = fake.played_on_after_clear(clears)
    return reaction, fake.stale_audio_after_clear(clears), played_on is not None


async def measure(
    url: str, turns: int, barge_ins: int
) -> tuple[list[float], list[float], list[float], list[float], int]:
    voice = HibariTTS(limiter=trio.CapacityLimiter(1), speed=0.95)
    await voice.load()
    questions = [trim(await voice.synthesize(q)) for q in QUESTIONS]
    long = trim(await voice.synthesize(LONG))
    interruptions = [trim(await voice.synthesize(t)) for t in INTERRUPTIONS]
    latencies: list[float] = []
    any_audio: list[float] = []
    reactions: list[float] = []
    stale: list[float] = []
    played_on = 0
    async with open_twilio_stream(url) as fake:
        await fake.wait_for_bot_to_finish()  # the greeting
        await fake.silence(0.5)
        for i in range(turns):
            voiced, first = await one_turn(fake, questions[i % len(questions)])
            latencies.append(voiced * 1000)
            any_audio.append(first * 1000)
            await fake.silence(0.3)
        for i in range(barge_ins):
            reaction, late, on = await one_barge_in(
                fake, long, interruptions[i % len(interruptions)]
            )
            reactions.append(reaction * 1000)
            stale.append(late * 1000)
            played_on += on
            await fake.silence(0.3)
    return latencies, any_audio, reactions, stale, played_on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--barge-ins", type=int, default=20)
    parser.add_argument("server_args", nargs="*", help="options for python -m phoneactors")
    args = parser.parse_args()
    with running_server("--log-level", "INFO", *args.server_args) as server:
        latencies, any_audio, reactions, stale, played_on = trio.run(
            measure, server.ws_url, args.turns, args.barge_ins
        )
        turns = [t for t in server.turn_lines() if "total" in t]
    print(f"machine: {machine()}")
    print(f"server: python -m phoneactors {' '.join(args.server_args)}".rstrip())
    print()
    print("| measure | median | p95 | min | max | n |")
    print("|---|---|---|---|---|---|")
    print(summary_row("voice-to-voice (last voiced frame → first voiced bot audio)", latencies))
    print(summary_row("  … → first bot audio frame, voiced or not", any_audio))
    for stage in ("end_of_speech", "stt", "reply", "tts", "send", "total"):
        values = [t[stage] for t in turns[: args.turns] if stage in t]
        print(summary_row(f"  server: {stage}", values))
    print(summary_row("barge-in (first frame of interruption → clear)", reactions))
    print(summary_row("  interrupted reply's audio after clear", stale))
    print()
    print(f"stale audio after clear, total over all barge-ins: {math.fsum(stale):.0f} ms")
    print(f"interruptions taken for a false one (the reply played on): {played_on} of {len(stale)}")


if __name__ == "__main__":
    main()
