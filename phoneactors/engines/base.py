"""Engine protocols and the shared machinery for running inference off the trio thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

import trio

from ..audio import PCM

T = TypeVar("T")


@runtime_checkable
class VoiceActivityDetector(Protocol):
    """Per-call, stateful: says whether one 20 ms frame (160 int16 samples, 8 kHz) is speech.

    Must be cheap (well under a millisecond): it runs on the trio thread for every frame.
    """

    def is_speech(self, frame: PCM) -> bool: ...


@runtime_checkable
class VoiceActivityEngine(Protocol):
    """Shared by all calls; hands each call its own :class:`VoiceActivityDetector`."""

    name: str

    async def load(self) -> None:
        """Load models and warm up. Idempotent. Raises ``ConfigurationError`` if impossible."""
        ...

    def new_detector(self) -> VoiceActivityDetector: ...


@runtime_checkable
class SpeechToText(Protocol):
    """Shared by all calls. ``transcribe`` takes 8 kHz int16 audio and returns plain text."""

    name: str

    async def load(self) -> None:
        """Load the model once and run a warm-up inference. Idempotent."""
        ...

    async def transcribe(self, audio: PCM) -> str:
        """Transcribe one utterance. On cancellation returns promptly (the worker may finish
        in the background but its result is discarded). Failures raise ``EngineError``."""
        ...


@runtime_checkable
class TextToSpeech(Protocol):
    """Shared by all calls. ``synthesize`` turns one sentence into 8 kHz int16 audio."""

    name: str

    async def load(self) -> None:
        """Load the voice once and run a warm-up synthesis. Idempotent."""
        ...

    async def synthesize(self, text: str) -> PCM:
        """Speak one sentence. Same cancellation and failure rules as ``transcribe``."""
        ...


def default_thread_count() -> int:
    """Worker threads for inference: one per core (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


async def run_inference(fn: Callable[..., T], *args: object, limiter: trio.CapacityLimiter) -> T:
    """Run blocking ``fn(*args)`` in a worker thread, at most ``limiter.total_tokens`` at once.

    Cancellation returns at once; the thread runs to completion in the background and keeps its
    limiter token until then, so a cancelled call never lets more inferences run than allowed.
    """
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter, abandon_on_cancel=True)


@dataclass
class Engines:
    """The three engines a call needs. One instance per process, shared by every call."""

    vad: VoiceActivityEngine
    stt: SpeechToText
    tts: TextToSpeech
    ready: trio.Event = field(default_factory=trio.Event, repr=False)

    async def load(self) -> None:
        """Load every engine (models, warm-up); sets :attr:`ready` when done."""
        await self.vad.load()
        await self.stt.load()
        await self.tts.load()
        self.ready.set()
