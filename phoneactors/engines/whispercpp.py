"""Speech-to-text with whisper.cpp through ``pywhispercpp`` (optional: ``phoneactors[whispercpp]``).

whisper.cpp runs ggml Whisper models. Its encoder can be told to look at only as much audio as
an utterance needs (``audio_ctx``), which cuts the cost of a 3 s phone utterance several-fold
compared with the full 30 s window that faster-whisper always encodes. The model file is always
local: phoneactors never downloads one.

``pywhispercpp`` is imported only when the model loads, in a worker thread.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce, default_thread_count
from .scheduling import Priority

__all__ = ["WhisperCppSTT", "audio_ctx_for"]

logger = logging.getLogger(__name__)

WHISPER_RATE: Final = 16000
"""Whisper models hear 16 kHz audio."""
ENCODER_FRAMES_PER_SECOND: Final = 50
"""Whisper's encoder turns 30 s of audio into 1500 frames."""
MAX_AUDIO_CTX: Final = 1500
AUDIO_CTX_MARGIN: Final = 128
"""Frames (2.56 s) added to what the utterance needs. Measured with tiny.en on phone audio:
a context that ends right where the speech ends makes the decoder repeat itself or drop words."""
AUDIO_CTX_FLOOR: Final = 512
"""Smallest context used (7.68 s). Measured with tiny.en: 1 to 3.5 s utterances decoded at 256 or
less often loop ("Yes. Yes. Yes. ..."); 384 and up did not."""
MIN_SAMPLES: Final = WHISPER_RATE
"""whisper.cpp refuses input shorter than one second, so shorter audio is padded with silence."""
_TOKENS_PER_SECOND_CAP: Final = 10
"""Upper bound on decoded tokens per second of audio (speech is 3 to 5): stops a runaway loop."""

HOW_TO_GET_A_MODEL: Final = (
    "Get a ggml Whisper model file (for example ggml-base.en.bin or ggml-tiny.en-q8_0.bin) with "
    "whisper.cpp's script models/download-ggml-model.sh, or from the Hugging Face repository "
    "ggerganov/whisper.cpp, put it on this machine and pass its path."
)
_GGML_LOG_ERROR: Final = 4
_GGML_MAGIC: Final = b"lmgg"
"""The first four bytes of every ggml Whisper model file (0x67676d6c, little-endian)."""
_WHISPER_LOG_LEVELS: Final = {2: logging.INFO, 3: logging.WARNING, _GGML_LOG_ERROR: logging.ERROR}
"""ggml log levels (1 debug, 2 info, 3 warn, 4 error, 5 continuation) as logging levels."""


def audio_ctx_for(seconds: float) -> int:
    """The encoder context (in 20 ms frames) used for an utterance of ``seconds``.

    ``ceil(seconds * 50) + AUDIO_CTX_MARGIN``, at least :data:`AUDIO_CTX_FLOOR`, at most 1500.
    """
    needed = math.ceil(max(seconds, 0.0) * ENCODER_FRAMES_PER_SECOND) + AUDIO_CTX_MARGIN
    return min(MAX_AUDIO_CTX, max(AUDIO_CTX_FLOOR, needed))


def _require_package() -> None:
    if importlib.util.find_spec("pywhispercpp") is None:
        raise ConfigurationError(
            "the 'whisper.cpp' speech-to-text engine needs the package pywhispercpp: "
            "pip install 'phoneactors[whispercpp]'"
        )


def _forward_whisper_log(level: int, text: str) -> None:
    line = text.rstrip()
    if line:
        logger.log(_WHISPER_LOG_LEVELS.get(level, logging.DEBUG), "whisper.cpp: %s", line)


def _warm_up_audio() -> PCM:
    noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
    return float_to_pcm(noise)


class WhisperCppSTT:
    """Whisper speech-to-text through whisper.cpp, tuned for short phone utterances.

    ``model_path`` is a local ggml model file; a missing file raises
    :class:`~phoneactors.errors.ModelNotFoundError` saying how to get one; a file that is not a
    ggml model, or a missing ``pywhispercpp``, raises
    :class:`~phoneactors.errors.ConfigurationError`.

    ``audio_ctx`` fixes the encoder context in 20 ms frames (1500 = whisper's full 30 s);
    ``None`` sizes it to each utterance with :func:`audio_ctx_for`. ``n_threads`` is
    whisper.cpp's threads per inference (default: one per core). Decoding is greedy, in the fixed
    ``language``, one segment without timestamps, without temperature fallback, and capped at
    ten tokens per second of audio.

    whisper.cpp's context is not reentrant, so one engine runs one transcription at a time; a
    second caller waits in its worker thread, holding its limiter token.
    """

    name = "whisper.cpp"

    def __init__(
        self,
        model_path: str,
        *,
        limiter: Limiter,
        n_threads: int | None = None,
        audio_ctx: int | None = None,
        language: str = "en",
    ) -> None:
        _require_package()
        if n_threads is not None and n_threads < 1:
            raise ConfigurationError(f"n_threads must be at least 1, got {n_threads}")
        if audio_ctx is not None and not 1 <= audio_ctx <= MAX_AUDIO_CTX:
            raise ConfigurationError(
                f"audio_ctx must be between 1 and {MAX_AUDIO_CTX} frames, got {audio_ctx}"
            )
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"the whisper.cpp model file {str(path)!r} does not exist. {HOW_TO_GET_A_MODEL}"
            )
        with path.open("rb") as file:
            magic = file.read(len(_GGML_MAGIC))
        if magic != _GGML_MAGIC:
            raise ConfigurationError(
                f"{str(path)!r} is not a ggml Whisper model (it does not start with the ggml "
                f"magic number). {HOW_TO_GET_A_MODEL}"
            )
        self.model_path = str(path)
        self.n_threads = n_threads if n_threads is not None else default_thread_count()
        self.audio_ctx = audio_ctx
        self.language = language
        self.limiter = limiter
        self._context_lock = threading.Lock()
        self._whisper: LoadOnce[Any] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=self.n_threads,
            priority=Priority.LISTEN,
            warm_up=lambda whisper: self._transcribe_sync(
                whisper, _warm_up_audio(), threading.Event()
            ),
            warm_up_failure=(
                f"{self.name}: the model {self.model_path!r} loaded but failed its warm-up "
                f"transcription"
            ),
        )

    def __repr__(self) -> str:
        return (
            f"WhisperCppSTT({self.model_path!r}, n_threads={self.n_threads}, "
            f"audio_ctx={self.audio_ctx}, language={self.language!r})"
        )

    async def load(self) -> None:
        """Load the model and run one warm-up transcription, both in a worker thread.

        Idempotent and safe to call from many tasks at once: the model loads exactly once.
        whisper.cpp's start-up chatter goes to the ``logging`` logger of this module instead of
        stderr. Raises :class:`~phoneactors.errors.ConfigurationError` when the file is not a
        model whisper.cpp can load or run. If cancelled, returns at once; the worker finishes in
        the background, its model is discarded, and the next ``load()`` starts over.
        """
        await self._whisper.load()

    async def transcribe(self, audio: PCM) -> str:
        """Transcribe one utterance of 8 kHz int16 audio into stripped text.

        Returns '' for empty audio (without inference) and when the model heard no words
        (a transcript of punctuation only counts as none).

        Loads the model first if :meth:`load` has not run. Resampling and inference run in a
        worker thread behind the shared limiter. On cancellation this returns at once and asks
        whisper.cpp to abort (it checks between decoding steps, so the encoder pass still
        finishes); the worker keeps its limiter token until it stops, and its result is
        discarded. Any failure of the engine raises :class:`~phoneactors.errors.EngineError`
        naming the engine and the original error.
        """
        if len(audio) == 0:
            return ""
        abort = threading.Event()
        try:
            return await self._whisper.run(
                self._transcribe_sync,
                audio,
                abort,
                failure=f"transcribe {len(audio) / SAMPLE_RATE:.2f} s of audio",
            )
        finally:
            abort.set()  # harmless once finished; after a cancellation it stops the worker early

    # -- worker-thread side ---------------------------------------------------------------

    def _load_sync(self) -> Any:
        import _pywhispercpp
        from pywhispercpp.model import Model

        errors: list[str] = []

        def forward(level: int, text: str) -> None:
            _forward_whisper_log(level, text)
            # A file cut short after its header only draws a warning, then runs as an empty
            # model that transcribes nothing useful; it counts as a failed load too.
            if level == _GGML_LOG_ERROR or "no tensors loaded" in text:
                errors.append(text.strip())

        # whisper.cpp logs through one process-wide hook. It forwards to ``logging`` only while
        # loading: a Python hook still installed when the interpreter shuts down crashes it.
        _pywhispercpp.whisper_log_set(forward)
        try:
            whisper = Model(
                self.model_path,
                n_threads=self.n_threads,
                language=self.language,
                print_progress=False,
                print_realtime=False,
                print_timestamps=False,
                no_timestamps=True,
                single_segment=True,
                no_context=True,
                temperature=0.0,
                temperature_inc=0.0,
                suppress_nst=True,
            )
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the model {self.model_path!r}: {exc!r}"
            ) from exc
        finally:
            _pywhispercpp.whisper_log_set(None)
        if errors:
            # pywhispercpp hands back a model around a null context, which crashes the process
            # on first use: whisper.cpp's error log is the only sign that loading failed.
            raise ConfigurationError(
                f"{self.name} could not load the model {self.model_path!r}: {'; '.join(errors)}"
            )
        return whisper

    def _transcribe_sync(self, whisper: Any, audio: PCM, abort: threading.Event) -> str:
        samples = resample(audio, SAMPLE_RATE, WHISPER_RATE)
        seconds = len(samples) / WHISPER_RATE
        if len(samples) < MIN_SAMPLES:
            samples = np.concatenate([samples, np.zeros(MIN_SAMPLES - len(samples), np.float32)])
        audio_ctx = self.audio_ctx if self.audio_ctx is not None else audio_ctx_for(seconds)
        max_tokens = math.ceil(max(seconds, 1.0) * _TOKENS_PER_SECOND_CAP)
        with self._context_lock:
            if abort.is_set():
                return ""
            segments = whisper.transcribe(
                samples, audio_ctx=audio_ctx, max_tokens=max_tokens, abort_callback=abort.is_set
            )
        text = " ".join(part for segment in segments if (part := segment.text.strip()))
        return text if any(char.isalnum() for char in text) else ""  # drop a lone "."
