"""Text-to-speech with hibari (``hibari-tts``, Apache-2.0), the default engine.

hibari is a small (7.9 MB) ONNX voice model with its own grapheme-to-phoneme front end; it runs
on onnxruntime with numpy and nothing else. The voice ``heart`` (American English, female) is
inside the wheel. hibari's other voices (``emma``, ``fable``, ``fenrir``, ``kore``) are fetched
by hibari from Hugging Face on first use; phoneactors only lets that happen with
``allow_download=True`` and otherwise needs them already in hibari's cache.

Constructing the engine imports hibari's voice registry (the ``hibari`` package with numpy and
scipy.fft, about 0.3 s) to check the voice; onnxruntime, the G2P lexicons and the voice model
load only in :meth:`HibariTTS.load`, in a worker thread.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Final

import numpy as np

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce
from .scheduling import Priority

__all__ = ["HibariTTS"]

DEFAULT_VOICE: Final = "heart"
"""The voice that ships inside the hibari wheel."""
_WARM_UP_TEXT: Final = "Hello, this is a warm-up for Phoneactors."
"""Runs the G2P (lexicon and, through the made-up word, the out-of-vocabulary model) and the
voice model once, so the first real sentence of the first call is fast."""


def _require_package() -> None:
    if importlib.util.find_spec("hibari") is None:
        raise ConfigurationError(
            "the 'hibari' text-to-speech engine needs the package hibari-tts: "
            "pip install hibari-tts (it is a dependency of phoneactors; reinstall phoneactors)"
        )


def _check_voice(voice: str, allow_download: bool) -> None:
    """Raise unless ``voice`` is a hibari voice that can be used without a surprise download."""
    from hibari.voices import VOICES, cache_dir, voice_path  # no onnxruntime, no model

    if voice not in VOICES:
        raise ConfigurationError(
            f"unknown hibari voice {voice!r}; the voices are: {', '.join(VOICES)}"
        )
    if allow_download:
        return
    try:
        voice_path(voice, download_missing=False)
    except FileNotFoundError:
        entry = VOICES[voice]
        raise ModelNotFoundError(
            f"the hibari voice {voice!r} is not on this machine: only {DEFAULT_VOICE!r} ships "
            f"inside the hibari-tts wheel, and phoneactors never downloads unless asked. "
            f"Get it by running once, with network access: hibari 'Hello.' --voice {voice} "
            f"-o /dev/null (hibari stores it in {os.path.join(cache_dir(), entry['file'])}; "
            f"set HIBARI_HOME to choose another folder), or copy {entry['file']} there by hand, "
            f"or pass allow_download=True."
        ) from None


class HibariTTS:
    """hibari text-to-speech: one sentence of text in, 8 kHz int16 phone audio out.

    ``voice`` is a hibari voice name (default ``heart``, bundled). Unknown names raise
    :class:`~phoneactors.errors.ConfigurationError` listing the voices; a known voice that is not
    on this machine raises :class:`~phoneactors.errors.ModelNotFoundError` saying how to get it,
    unless ``allow_download=True``. ``speed`` is hibari's pace (1.0 normal, 0.5 to 2.0).
    ``limiter`` bounds the inferences running at once across every engine of the process.
    """

    name = "hibari"

    def __init__(
        self,
        voice: str | None = None,
        *,
        limiter: Limiter,
        speed: float = 1.0,
        allow_download: bool = False,
    ) -> None:
        _require_package()
        if not 0.5 <= speed <= 2.0:
            raise ConfigurationError(f"hibari speed must be between 0.5 and 2.0, got {speed}")
        self.voice = voice if voice is not None else DEFAULT_VOICE
        _check_voice(self.voice, allow_download)
        self.speed = speed
        self._allow_download = allow_download
        self.limiter = limiter
        self._hibari: LoadOnce[Any] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=1,  # hibari runs onnxruntime on one thread
            priority=Priority.SPEAK,
            warm_up=lambda hibari: self._synthesize_sync(hibari, _WARM_UP_TEXT),
            warm_up_failure=(
                f"{self.name}: the voice {self.voice!r} loaded but failed its warm-up synthesis"
            ),
        )

    def __repr__(self) -> str:
        return f"HibariTTS({self.voice!r}, speed={self.speed})"

    async def load(self) -> None:
        """Load the voice and run one warm-up synthesis, both in a worker thread.

        Idempotent and safe to call from many tasks at once: the voice loads exactly once.
        Raises :class:`~phoneactors.errors.ConfigurationError` when it cannot be loaded or run
        (:class:`~phoneactors.errors.ModelNotFoundError` when an opted-in download fails). If
        cancelled, returns at once; the worker finishes in the background, its result is
        discarded, and the next ``load()`` starts over.
        """
        await self._hibari.load()

    async def synthesize(self, text: str) -> PCM:
        """Speak ``text`` (one sentence, or a few); returns 8 kHz int16 audio.

        Empty or blank text returns an empty array without touching the model. Loads the voice
        first if :meth:`load` has not run. Synthesis and resampling run in a worker thread
        behind the shared limiter. On cancellation this returns at once; the worker runs to
        completion in the background, keeps its limiter token until then, and its audio is
        discarded. Any failure of the engine raises :class:`~phoneactors.errors.EngineError`
        naming the engine and the original error.
        """
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        return await self._hibari.run(
            self._synthesize_sync, text, failure=f"synthesize {text[:60]!r}"
        )

    # -- worker-thread side ---------------------------------------------------------------

    def _load_sync(self) -> Any:
        from hibari import Hibari
        from hibari.voices import voice_path

        try:
            # Finds the bundled or cached file; downloads only if allowed (checked at __init__).
            voice_path(self.voice, download_missing=self._allow_download)
        except Exception as exc:
            raise ModelNotFoundError(
                f"{self.name} could not get the voice {self.voice!r}: {exc}"
            ) from exc
        try:
            return Hibari(voice=self.voice)
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the voice {self.voice!r}: {exc!r}"
            ) from exc

    def _synthesize_sync(self, hibari: Any, text: str) -> PCM:
        audio = hibari(text, speed=self.speed)
        return float_to_pcm(resample(audio, int(hibari.sample_rate), SAMPLE_RATE))
