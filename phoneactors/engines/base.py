"""Engine protocols and the shared machinery for running inference off the trio thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeAlias, TypeVar, cast, runtime_checkable

import trio

from ..audio import PCM
from ..errors import ConfigurationError, EngineError
from ..messages import Transcription as Transcription
from .scheduling import InferenceSlots, Priority

T = TypeVar("T")
M = TypeVar("M")


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


def as_transcription(result: str | Transcription) -> Transcription:
    """An engine's answer as a :class:`Transcription` (engines may return plain text)."""
    return result if isinstance(result, Transcription) else Transcription(result)


@runtime_checkable
class SpeechToText(Protocol):
    """Shared by all calls. ``transcribe`` takes 8 kHz int16 audio and returns its text: a
    plain ``str``, or a :class:`Transcription` that also says how sure the engine was."""

    name: str

    async def load(self) -> None:
        """Load the model once and run a warm-up inference. Idempotent."""
        ...

    async def transcribe(self, audio: PCM) -> str | Transcription:
        """Transcribe one utterance. On cancellation returns promptly (the worker may finish
        in the background but its result is discarded). Failures raise ``EngineError``."""
        ...


@runtime_checkable
class HintedSpeechToText(Protocol):
    """A speech-to-text engine that can transcribe again told what words to expect (for a
    second look at a short unclear sound over the bot). Optional: faster-whisper has it."""

    async def transcribe_hinted(self, audio: PCM, hint: str) -> Transcription:
        """Transcribe ``audio`` expecting words like ``hint``; failures raise ``EngineError``."""
        ...


@runtime_checkable
class AlternativesSpeechToText(Protocol):
    """A speech-to-text engine that can also say which other readings of the audio it nearly
    heard (:attr:`Transcription.alternatives`), for judging whether a turn is over at a pause.
    Optional: faster-whisper has it; plain :meth:`SpeechToText.transcribe` never pays for it."""

    async def transcribe_with_alternatives(self, audio: PCM) -> Transcription:
        """Transcribe ``audio`` as ``transcribe`` does, with the runner-up readings; failures
        raise ``EngineError``."""
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


Limiter: TypeAlias = "trio.CapacityLimiter | InferenceSlots"
"""What bounds a process's inferences: its :class:`InferenceSlots` (threads, by priority), or a
plain :class:`trio.CapacityLimiter` (one token an inference, first come first served)."""


async def run_inference(
    fn: Callable[..., T],
    *args: object,
    limiter: Limiter,
    cost: int = 1,
    priority: Priority = Priority.LISTEN,
) -> T:
    """Run blocking ``fn(*args)`` in a worker thread once ``limiter`` allows it.

    With :class:`InferenceSlots` the inference claims ``cost`` threads (the threads it runs on)
    at ``priority``; with a :class:`trio.CapacityLimiter`, one token. Cancellation returns at
    once; the thread runs to completion in the background and keeps what it claimed until then,
    so a cancelled call never lets more inferences run than allowed.
    """
    claim = limiter.claim(cost, priority) if isinstance(limiter, InferenceSlots) else limiter
    # trio takes any object with a CapacityLimiter's acquire/release_on_behalf_of (a Claim).
    return await trio.to_thread.run_sync(
        fn, *args, limiter=cast(trio.CapacityLimiter, claim), abandon_on_cancel=True
    )


class LoadOnce(Generic[M]):
    """A model that a thread-backed engine loads once, warms up, and then runs for every call.

    ``load`` (blocking) makes the model and ``warm_up`` (blocking, optional) runs it once, both in
    a worker thread behind ``limiter``; each inference claims ``cost`` threads at ``priority``.
    A failed warm-up raises :class:`~phoneactors.errors.ConfigurationError` with
    ``warm_up_failure`` and the original error; a failure in :meth:`run` raises
    :class:`~phoneactors.errors.EngineError` naming the engine ``name``. Cancelling :meth:`load`
    discards the worker's model; the next call starts over.
    """

    def __init__(
        self,
        name: str,
        load: Callable[[], M],
        *,
        limiter: Limiter,
        warm_up: Callable[[M], object] | None = None,
        warm_up_failure: str = "",
        cost: int = 1,
        priority: Priority = Priority.LISTEN,
    ) -> None:
        self.name = name
        self.limiter = limiter
        self.cost = cost
        """CPU threads one inference runs on (its claim on :class:`InferenceSlots`)."""
        self.priority = priority
        """How urgent this engine's inferences are; loading and warm-up are ``PREPARE``."""
        self.model: M | None = None
        """The loaded, warmed-up model; ``None`` until :meth:`load` has finished."""
        self._load = load
        self._warm_up = warm_up
        self._warm_up_failure = warm_up_failure
        self._lock = trio.Lock()

    async def load(self) -> M:
        """Load and warm up the model unless done already; safe from many tasks at once."""
        async with self._lock:
            if self.model is not None:
                return self.model
            model = await self._prepare(self._load)
            if self._warm_up is not None:
                try:
                    await self._prepare(self._warm_up, model)
                except Exception as exc:
                    raise ConfigurationError(f"{self._warm_up_failure}: {exc!r}") from exc
            self.model = model
            return model

    async def _prepare(self, fn: Callable[..., T], *args: object) -> T:
        return await run_inference(
            fn, *args, limiter=self.limiter, cost=self.cost, priority=Priority.PREPARE
        )

    async def run(self, fn: Callable[..., T], *args: object, failure: str) -> T:
        """``fn(model, *args)`` in a worker thread, loading the model first if needed.

        Errors of ``fn`` raise ``EngineError("{name} failed to {failure}: {error!r}")``.
        """
        model = await self.load()
        try:
            return await run_inference(
                fn, model, *args, limiter=self.limiter, cost=self.cost, priority=self.priority
            )
        except Exception as exc:
            raise EngineError(f"{self.name} failed to {failure}: {exc!r}") from exc


@dataclass
class Engines:
    """The three engines a call needs. One instance per process, shared by every call."""

    vad: VoiceActivityEngine
    stt: SpeechToText
    tts: TextToSpeech
    ready: trio.Event = field(default_factory=trio.Event, repr=False)
    inference: InferenceSlots | None = None
    """The slots the engines' inferences share, when they share one (``/metrics`` reports its
    waits, and the server refuses new calls while they are long); ``None`` for engines made
    with a plain limiter, or none."""

    async def load(self) -> None:
        """Load every engine (models, warm-up); sets :attr:`ready` when done."""
        await self.vad.load()
        await self.stt.load()
        await self.tts.load()
        self.ready.set()

    async def aclose(self) -> None:
        """Release what the engines hold beyond memory (the remote engines' connection pools),
        once each: every engine with an ``aclose`` coroutine method gets it awaited. Shielded
        from cancellation, so it also runs when shutdown is a cancellation; idempotent."""
        closed: list[object] = []
        with trio.CancelScope(shield=True):
            for engine in (self.vad, self.stt, self.tts):
                close = getattr(engine, "aclose", None)
                if close is None or any(engine is done for done in closed):
                    continue
                closed.append(engine)
                await close()
