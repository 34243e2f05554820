"""Text-to-speech with Coqui TTS (``coqui-tts``, MPL-2.0; optional: ``phoneactors[coqui]``).

No Coqui model ships in any pip package and phoneactors never downloads one: the engine takes
the folder of a model already on this machine (``--tts-model DIR``), as coqui-tts saves it:

- VITS (and the other single-file models of coqui-tts): ``config.json`` and one checkpoint
  (``model.pth``, ``model_file.pth``, ``best_model.pth``, or the only other ``.pth`` there),
  plus whatever files the config names (speakers, languages). A multi-speaker model speaks as
  the speaker named by ``voice`` (default: its first); a multilingual one in ``language``.
- XTTS: ``config.json``, ``model.pth`` and ``vocab.json`` (and usually ``speakers_xtts.pth``).
  XTTS clones a voice: ``voice`` is a reference recording (a ``.wav`` or other sound file,
  ideally 6 to 30 s of one clean speaker) or the name of a speaker in ``speakers_xtts.pth``
  (default: its first). The voice's conditioning is computed once, when the model loads; each
  sentence then runs the autoregressive model, which stops early when its call is cancelled.

Audio comes out at the model's rate (22.05 kHz for most VITS models, 24 kHz for XTTS) and is
resampled to 8 kHz. ``coqui-tts`` and torch are imported only when the model loads, in a worker
thread; constructing the engine reads nothing but the folder and its ``config.json``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce, default_thread_count
from .coqui_model import (
    EXTRA,
    HOW_TO_GET_A_MODEL,
    ModelFolder,
    check_setup,
    find_model,
    listed,
    missing_packages,
    relocated,
)
from .scheduling import Priority

__all__ = [
    "DEVICES",
    "EXTRA",
    "HOW_TO_GET_A_MODEL",
    "CoquiTTS",
    "ModelFolder",
    "check_setup",
    "find_model",
    "missing_packages",
    "relocated",
]

log = logging.getLogger(__name__)

DEVICES: Final = ("cpu", "cuda")
SOUND_SUFFIXES: Final = frozenset({".wav", ".flac", ".ogg", ".mp3"})
"""How a ``voice`` that is a reference recording ends (XTTS)."""
WARM_UP_TEXT: Final = "Hello, this is a warm-up for Phoneactors."
XTTS_TRANSFORMERS_BELOW: Final = 5
"""The major version of transformers from which coqui-tts 0.28's XTTS fails."""
DEFAULT_LANGUAGE: Final = "en"
"""The language of a multilingual model when none is named, if the model has it."""
_SAID: Final = 300
"""Characters of a library's error message kept in a start-up error (on one line; all of it
goes to the debug log)."""


@dataclass(frozen=True)
class _Loaded:
    """The loaded model and what speaking with it needs."""

    api: Any
    """``TTS.api.TTS``."""
    rate: int
    """The model's output sample rate."""
    speaker: str | None
    language: str | None
    latents: tuple[Any, Any] | None = None
    """XTTS: the voice's GPT conditioning latents and speaker embedding."""


class CoquiTTS:
    """Coqui TTS text-to-speech (VITS, XTTS, ...): one sentence in, 8 kHz int16 audio out.

    ``model`` is the folder of a Coqui model on this machine, or a checkpoint file in one (see
    the module docstring); it is checked here, so a bad choice (or none) fails at start-up with
    :class:`~phoneactors.errors.ModelNotFoundError` saying how to get a model. A missing
    ``coqui-tts``, torch or torchaudio raises :class:`~phoneactors.errors.ConfigurationError`
    naming the extra (and the model too, if that is missing as well).

    ``voice``: for a multi-speaker model, the speaker (default: the model's first); for XTTS, a
    reference recording's path or a speaker of ``speakers_xtts.pth`` (default: its first; one of
    the two is needed). ``language``: for a multilingual model (XTTS, YourTTS), the language
    its sentences are in (default ``en`` where the model has it). Both are checked against the
    model when it loads; a wrong one raises :class:`ConfigurationError` listing the choices.

    ``device`` is ``"cpu"`` (default) or ``"cuda"`` (the first GPU, which torch must see). On
    the CPU an inference claims every core's thread from ``limiter`` (torch runs on all of
    them); on CUDA, one.
    """

    name = "coqui"

    def __init__(
        self,
        model: str | Path | None,
        *,
        limiter: Limiter,
        voice: str | None = None,
        language: str | None = None,
        device: str = "cpu",
    ) -> None:
        check_setup(model)  # all that is missing, in one message
        if model is None or not str(model).strip():
            raise ConfigurationError("the Coqui model must be the path of a model folder, got ''")
        if device not in DEVICES:
            raise ConfigurationError(
                f"the Coqui device (--tts-device) must be one of {', '.join(DEVICES)}, "
                f"got {device!r}"
            )
        if voice is not None and not voice.strip():
            raise ConfigurationError("the Coqui voice is empty")
        if language is not None and not language.strip():
            raise ConfigurationError("the Coqui language is empty")
        self.model = find_model(model)
        self.voice = voice.strip() if voice is not None else None
        self.language = language.strip() if language is not None else None
        self.device = device
        self.reference: Path | None = None
        """XTTS: the reference recording the voice is cloned from, if ``voice`` is one."""
        if self.model.is_xtts and self.voice is not None and self._is_recording(self.voice):
            self.reference = Path(self.voice).expanduser()
            if not self.reference.is_file():
                raise ModelNotFoundError(
                    f"the XTTS reference recording {str(self.reference)!r} does not exist"
                )
        if (
            self.model.is_xtts
            and self.reference is None
            and self.voice is None
            and not (self.model.folder / "speakers_xtts.pth").is_file()
        ):
            raise ConfigurationError(
                f"the XTTS model {str(self.model.folder)!r} has no speakers_xtts.pth, so it "
                "needs a voice to clone: name a reference recording (6 to 30 s of one clean "
                "speaker, e.g. voice.wav) as the voice (--tts-voice)"
            )
        self.limiter = limiter
        self._model: LoadOnce[_Loaded] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=default_thread_count() if device == "cpu" else 1,
            priority=Priority.SPEAK,
            warm_up=lambda loaded: self._synthesize_sync(loaded, WARM_UP_TEXT, threading.Event()),
            warm_up_failure=(
                f"{self.name}: the model {str(self.model.checkpoint)!r} loaded but failed its "
                "warm-up synthesis"
            ),
        )

    def __repr__(self) -> str:
        return (
            f"CoquiTTS({str(self.model.folder)!r}, kind={self.model.kind!r}, voice={self.voice!r}, "
            f"language={self.language!r}, device={self.device!r})"
        )

    @staticmethod
    def _is_recording(voice: str) -> bool:
        return Path(voice).suffix.lower() in SOUND_SUFFIXES or Path(voice).expanduser().is_file()

    async def load(self) -> None:
        """Load the model (and, for XTTS, the voice) and run one warm-up synthesis, in a worker
        thread at ``PREPARE`` priority.

        Idempotent and safe to call from many tasks at once: the model loads exactly once.
        Raises :class:`~phoneactors.errors.ConfigurationError` when coqui-tts cannot be imported
        (torch and torchaudio must be builds that match), CUDA was asked for and torch sees no
        GPU, the checkpoint cannot be loaded, the voice or language is not the model's, or the
        warm-up fails. If cancelled, returns at once; the worker finishes in the background,
        its model is discarded, and the next ``load()`` starts over.
        """
        await self._model.load()

    async def synthesize(self, text: str) -> PCM:
        """Speak ``text`` (one sentence); returns 8 kHz int16 audio.

        Blank text returns an empty array without touching the model. Loads the model first if
        :meth:`load` has not run. Synthesis and resampling run in a worker thread behind the
        shared limiter. On cancellation this returns at once; the worker runs on in the
        background (XTTS stops at its next generated token), keeps its claim on the limiter
        until then, and its audio is discarded. Any failure of the engine raises
        :class:`~phoneactors.errors.EngineError` naming the engine and the original error.
        """
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        abort = threading.Event()
        try:
            return await self._model.run(
                self._synthesize_sync, text, abort, failure=f"synthesize {text[:60]!r}"
            )
        finally:
            abort.set()  # harmless once finished; after a cancellation it stops XTTS

    # -- worker-thread side ---------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException) -> ConfigurationError:
        """A one-line start-up error; the traceback goes to the debug log."""
        log.debug("%s: %s", self.name, what, exc_info=exc)
        cause = exc.__cause__ or exc.__context__
        said = f"{exc} ({type(cause).__name__}: {cause})" if cause is not None else str(exc)
        said = " ".join(said.split())
        if len(said) > _SAID:
            said = said[: _SAID - 1] + "…"
        return ConfigurationError(f"{self.name}: {what}: {type(exc).__name__}: {said}")

    def _load_sync(self) -> _Loaded:
        try:
            import torch
            from TTS.api import TTS
        except Exception as exc:
            raise self._fail(
                "coqui-tts cannot be imported (torch and torchaudio must be a pair: torchaudio "
                "2.11.0 for torch 2.11, both CPU-only or both CUDA builds; "
                f"{EXTRA}, see the README)",
                exc,
            ) from None
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigurationError(
                f"{self.name}: the device cuda was asked for, but torch {torch.__version__} sees "
                "no CUDA GPU (a CPU-only build of torch, or no driver); use the device cpu "
                "(--tts-device cpu)"
            )
        if self.model.is_xtts:
            _check_transformers_for_xtts()
        model = self.model
        try:
            api = self._open(TTS)
        except Exception as exc:
            raise self._fail(
                f"the model {str(model.checkpoint)!r} could not be loaded", exc
            ) from None
        if self.device == "cuda":
            api = api.to("cuda")
        synthesizer = api.synthesizer
        rate = int(synthesizer.output_sample_rate)
        if model.is_xtts:
            return self._load_xtts(api, synthesizer.tts_model, rate)
        language = self._choose(
            "language", self.language, list(api.languages or []) if api.is_multi_lingual else []
        )
        speaker = self._choose(
            "speaker", self.voice, list(api.speakers or []) if api.is_multi_speaker else []
        )
        return _Loaded(api, rate, speaker, language)

    def _open(self, tts: Any) -> Any:
        """``TTS.api.TTS`` on the model, its config's file settings first pointed into the
        model's folder where they name files elsewhere (:func:`relocated`)."""
        model = self.model
        path = str(model.folder if model.is_xtts else model.checkpoint)
        settings = json.loads(model.config.read_text(encoding="utf-8"))
        if not relocated(settings, model.folder):
            return tts(model_path=path, config_path=str(model.config), progress_bar=False)
        with tempfile.TemporaryDirectory(prefix="phoneactors-coqui-") as scratch:
            config = Path(scratch) / "config.json"
            config.write_text(json.dumps(settings), encoding="utf-8")
            log.info(
                "%s: %s names files elsewhere; reading them from %s",
                self.name,
                model.config,
                model.folder,
            )
            return tts(model_path=path, config_path=str(config), progress_bar=False)

    def _choose(self, what: str, wanted: str | None, offered: list[str]) -> str | None:
        """``wanted`` if the model offers it; if nothing was asked for, the model's first
        speaker or its language :data:`DEFAULT_LANGUAGE` (else its first); ``None`` for a model
        that offers no such choice."""
        where = f"the model {str(self.model.folder)!r}"
        option = "voice (--tts-voice)" if what == "speaker" else "language (--tts-language)"
        if not offered:
            if wanted is not None:
                raise ConfigurationError(
                    f"{self.name}: {where} has no {what}s to choose from; leave the {option} "
                    f"out (got {wanted!r})"
                )
            return None
        if wanted is None:
            preferred = DEFAULT_LANGUAGE if what == "language" else offered[0]
            chosen = preferred if preferred in offered else offered[0]
            log.info("%s: %s has %d %ss; using %r", self.name, where, len(offered), what, chosen)
            return chosen
        if wanted not in offered:
            raise ConfigurationError(
                f"{self.name}: {where} has no {what} {wanted!r}; it has {listed(offered)}"
            )
        return wanted

    def _load_xtts(self, api: Any, xtts: Any, rate: int) -> _Loaded:
        languages = [str(name) for name in xtts.config.languages]
        language = self._choose("language", self.language, languages)
        manager = xtts.speaker_manager
        speakers = [str(name) for name in manager.speaker_names] if manager is not None else []
        if self.reference is not None:
            try:
                latents = self._clone(xtts, self.reference)
            except Exception as exc:
                raise self._fail(
                    f"the voice could not be taken from {str(self.reference)!r}", exc
                ) from None
            return _Loaded(api, rate, None, language, latents)
        speaker = self._choose("speaker", self.voice, speakers)
        if speaker is None:
            raise ConfigurationError(
                f"{self.name}: the XTTS model {str(self.model.folder)!r} has no speakers; name "
                "a reference recording as the voice (--tts-voice)"
            )
        latent, embedding = manager.speakers[speaker].values()
        return _Loaded(api, rate, speaker, language, (latent, embedding))

    @staticmethod
    def _clone(xtts: Any, recording: Path) -> tuple[Any, Any]:
        """XTTS's conditioning for the voice in ``recording``, as coqui-tts computes it from a
        file, but read with soundfile (torchaudio would need FFmpeg for that)."""
        import soundfile
        import torch

        load_rate = 22050
        samples, file_rate = soundfile.read(str(recording), dtype="float32", always_2d=True)
        mono = resample(np.asarray(samples.mean(axis=1)), int(file_rate), load_rate)
        config = xtts.config
        audio = torch.from_numpy(mono[: load_rate * int(config.max_ref_len)]).unsqueeze(0)
        audio = audio.to(xtts.device)
        if config.sound_norm_refs:
            audio = audio / audio.abs().max() * 0.75
        embedding = xtts.get_speaker_embedding(audio, load_rate)
        latent = xtts.get_gpt_cond_latents(
            audio, load_rate, length=config.gpt_cond_len, chunk_length=config.gpt_cond_chunk_len
        )
        return latent, embedding

    def _synthesize_sync(self, loaded: _Loaded, text: str, abort: threading.Event) -> PCM:
        import torch

        with torch.inference_mode():
            if loaded.latents is not None:
                audio = _xtts_speak(loaded, text, abort)
            else:
                wav = loaded.api.tts(
                    text, speaker=loaded.speaker, language=loaded.language, split_sentences=False
                )
                audio = np.asarray(wav, dtype=np.float32)
        return float_to_pcm(resample(audio.reshape(-1), loaded.rate, SAMPLE_RATE))


def _check_transformers_for_xtts() -> None:
    """coqui-tts 0.28's XTTS fails in its first sentence with transformers 5 ('NoneType' object
    has no attribute 'get_seq_length'): say so at start-up instead."""
    from importlib.metadata import version

    found = version("transformers")
    if int(found.split(".")[0]) >= XTTS_TRANSFORMERS_BELOW:
        raise ConfigurationError(
            f"coqui: XTTS in coqui-tts 0.28 does not run with transformers {found}: pip install "
            f"'transformers<{XTTS_TRANSFORMERS_BELOW}' (the coqui extra asks for it)"
        )


def _xtts_speak(loaded: _Loaded, text: str, abort: threading.Event) -> Any:
    """One sentence from XTTS with the loaded voice and the config's sampling settings; the
    autoregressive model stops at its next token once ``abort`` is set."""
    import torch
    from transformers import StoppingCriteriaList

    def aborted(input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), abort.is_set(), dtype=torch.bool)

    xtts = loaded.api.synthesizer.tts_model
    config = xtts.config
    latent, embedding = loaded.latents or (None, None)
    out = xtts.inference(
        text,
        loaded.language,
        latent,
        embedding,
        temperature=config.temperature,
        length_penalty=config.length_penalty,
        repetition_penalty=config.repetition_penalty,
        top_k=config.top_k,
        top_p=config.top_p,
        stopping_criteria=StoppingCriteriaList([aborted]),
    )
    return np.asarray(out["wav"], dtype=np.float32)
