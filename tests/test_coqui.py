"""The optional Coqui TTS engine (``pip install 'phoneactors[coqui]'``).

Without the extra, everything that needs no model still runs: the checks of a model folder, the
config's file settings pointed into the folder, the options, and the one-line errors of the
registry and the command line. With it, tiny VITS and XTTS models with random weights, built
here from a config in about a second (they speak noise), are loaded and run for real: warm-up,
a sentence to 8 kHz audio, speakers, languages, a cloned voice, broken checkpoints,
cancellation, the inference slots, and in an ``e2e`` test ``python -m phoneactors --tts coqui
--tts-model DIR`` serving a call. A fake XTTS model object checks what is hard to provoke in a
real one (a cancellation mid-sentence, the choices offered). CUDA is not run at all.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from phoneactors import cli
from phoneactors.audio import SAMPLE_RATE
from phoneactors.cli.building import engines_from_args
from phoneactors.engines import coqui, coqui_model
from phoneactors.engines.base import TextToSpeech, default_thread_count, run_inference
from phoneactors.engines.coqui import (
    HOW_TO_GET_A_MODEL,
    CoquiTTS,
    find_model,
    relocated,
)
from phoneactors.engines.registry import build_engines
from phoneactors.engines.scheduling import InferenceSlots, Priority
from phoneactors.errors import ConfigurationError, EngineError, ModelNotFoundError
from phoneactors.testing import open_twilio_stream

HAVE_COQUI = all(importlib.util.find_spec(m) for m in ("TTS", "torch", "torchaudio"))
HOW_TO_ENABLE = (
    "coqui-tts is not installed (pip install 'phoneactors[coqui]'; see README, Coqui TTS, "
    "for torch's CPU-only or CUDA build)"
)
needs_coqui = pytest.mark.skipif(not HAVE_COQUI, reason=HOW_TO_ENABLE)
EXTRA = "pip install 'phoneactors[coqui]'"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's packages count as installed (for what is checked before they are used)."""
    monkeypatch.setattr(coqui_model, "missing_packages", list)


@pytest.fixture
def not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        coqui_model, "missing_packages", lambda: ["coqui-tts", "torch", "torchaudio"]
    )


def model_folder(folder: Path, kind: str = "vits", *files: str) -> Path:
    """A folder that looks like a Coqui model (its files empty): enough for the checks."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model": kind}))
    for name in files:
        (folder / name).write_bytes(b"")
    return folder


# ============================================================================================
# Without the extra: the one-line errors


def test_missing_extra_and_model_are_said_in_one_line(not_installed: None) -> None:
    with pytest.raises(ConfigurationError) as raised:
        build_engines(tts="coqui")
    message = str(raised.value)
    assert EXTRA in message
    assert "tts_model" in message  # the model is missing too, and said at once
    assert "\n" not in message
    assert not isinstance(raised.value, ModelNotFoundError)  # the extra comes first


def test_missing_extra_is_named_even_with_a_model(not_installed: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(EXTRA)) as raised:
        CoquiTTS(str(tmp_path), limiter=trio.CapacityLimiter(1))
    assert "tts_model" not in str(raised.value)


def test_command_line_without_the_extra_says_what_to_do_in_one_line(
    not_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--tts", "coqui", "--records", "off"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("phoneactors: error: the 'coqui' text-to-speech engine needs")
    assert EXTRA in err
    assert "--tts-model" in err


def test_command_line_names_a_model_path_that_is_not_there(
    installed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-model"
    argv = ["--tts", "coqui", "--tts-model", str(missing), "--records", "off"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"the Coqui model {str(missing)!r} does not exist" in err
    assert "tts --model_name" in err  # how to get one


def test_no_model_says_how_to_get_one(installed: None) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no default model|needs the folder") as raised:
        build_engines(tts="coqui")
    assert HOW_TO_GET_A_MODEL in str(raised.value)


def test_a_library_that_cannot_be_imported_is_a_one_line_start_up_error(
    installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = model_folder(tmp_path / "m", "vits", "model.pth")
    monkeypatch.setitem(sys.modules, "TTS.api", None)  # as when torchaudio's libraries fail
    tts = CoquiTTS(folder, limiter=trio.CapacityLimiter(1))
    with pytest.raises(ConfigurationError, match="coqui-tts cannot be imported") as raised:
        trio.run(tts.load)
    message = str(raised.value)
    assert "torchaudio 2.11.0 for torch 2.11" in message
    assert EXTRA in message
    assert "\n" not in message
    assert raised.value.__cause__ is None


# ============================================================================================
# The model folder


def test_a_vits_folder_and_its_checkpoint(installed: None, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "vits", "vits", "model_file.pth", "speakers.pth")
    found = find_model(folder)
    assert (found.folder, found.config) == (folder, folder / "config.json")
    assert found.checkpoint == folder / "model_file.pth"
    assert (found.kind, found.is_xtts) == ("vits", False)
    assert find_model(folder / "model_file.pth") == found  # the checkpoint may be named


def test_the_only_other_checkpoint_is_taken(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", "vits", "checkpoint_90000.pth", "speakers.pth")
    assert find_model(folder).checkpoint.name == "checkpoint_90000.pth"


def test_several_checkpoints_must_be_told_apart(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", "vits", "checkpoint_1.pth", "checkpoint_2.pth")
    with pytest.raises(ModelNotFoundError, match=r"checkpoint_1.pth, checkpoint_2.pth"):
        find_model(folder)
    assert find_model(folder / "checkpoint_2.pth").checkpoint.name == "checkpoint_2.pth"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "has no config.json, so it is not a Coqui model folder"),
        ("{not json", "cannot be read as a Coqui config"),
        ('{"audio": {}}', "cannot be read as a Coqui config"),
    ],
)
def test_a_folder_without_a_usable_config_is_refused(
    tmp_path: Path, config: str | None, message: str
) -> None:
    (tmp_path / "model.pth").write_bytes(b"")
    if config is not None:
        (tmp_path / "config.json").write_text(config)
    with pytest.raises(ModelNotFoundError, match=message) as raised:
        find_model(tmp_path)
    assert raised.value.__cause__ is None  # one line, no traceback after it


def test_a_folder_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", "vits", "speakers.pth")
    with pytest.raises(ModelNotFoundError, match=r"has a config.json but no checkpoint"):
        find_model(folder)


def test_an_xtts_folder_needs_its_model_and_vocabulary(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "xtts", "xtts", "model.pth")
    with pytest.raises(ModelNotFoundError, match=r"has no vocab.json"):
        find_model(folder)
    (folder / "vocab.json").write_text("{}")
    assert find_model(folder).is_xtts
    (folder / "model.pth").unlink()
    with pytest.raises(ModelNotFoundError, match=r"xtts model folder .* has no model.pth"):
        find_model(folder)


def test_xtts_without_speakers_needs_a_recording_to_clone(installed: None, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "xtts", "xtts", "model.pth", "vocab.json")
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(ConfigurationError, match="needs a voice to clone"):
        CoquiTTS(folder, limiter=limiter)
    with pytest.raises(ModelNotFoundError, match=r"reference recording .* does not exist"):
        CoquiTTS(folder, limiter=limiter, voice=str(tmp_path / "me.wav"))
    (tmp_path / "me.wav").write_bytes(b"")
    assert CoquiTTS(folder, limiter=limiter, voice=str(tmp_path / "me.wav")).reference


def test_files_named_elsewhere_are_found_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "speakers.json").write_text("{}")
    (tmp_path / "scale_stats.npy").write_bytes(b"")
    there = str(tmp_path / "config.json")  # a file that exists stays as it is
    settings: dict[str, Any] = {
        "speakers_file": "/home/someone/.local/share/tts/vctk/speakers.json",
        "d_vector_file": ["/elsewhere/speakers.json"],
        "language_ids_file": "/elsewhere/language_ids.json",  # not in the folder either
        "speaker_encoder_config_path": there,
        "model_args": {"speakers_file": "/elsewhere/speakers.json", "d_vector_file": None},
        "audio": {"stats_path": "/elsewhere/scale_stats.npy"},
    }
    (tmp_path / "config.json").write_text("{}")
    assert relocated(settings, tmp_path)
    here = str(tmp_path / "speakers.json")
    assert settings["speakers_file"] == here
    assert settings["d_vector_file"] == [here]
    assert settings["language_ids_file"] == "/elsewhere/language_ids.json"
    assert settings["speaker_encoder_config_path"] == there
    assert settings["model_args"] == {"speakers_file": here, "d_vector_file": None}
    assert settings["audio"]["stats_path"] == str(tmp_path / "scale_stats.npy")
    assert not relocated(settings, tmp_path)  # nothing left to move


# ============================================================================================
# Options


def test_options_are_checked(installed: None, tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", "vits", "model.pth")
    limiter = trio.CapacityLimiter(1)
    with pytest.raises(ConfigurationError, match="must be one of cpu, cuda, got 'tpu'"):
        CoquiTTS(folder, limiter=limiter, device="tpu")
    with pytest.raises(ConfigurationError, match="voice is empty"):
        CoquiTTS(folder, limiter=limiter, voice=" ")
    with pytest.raises(ConfigurationError, match="language is empty"):
        CoquiTTS(folder, limiter=limiter, language="")
    with pytest.raises(ConfigurationError, match="must be the path of a model folder"):
        CoquiTTS("  ", limiter=limiter)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tts_language": "de"}, "tts_language is only used by the 'coqui' tts engine"),
        ({"tts_device": "cuda"}, "tts_device is only used by the 'coqui' tts engine"),
        ({"tts_model": "x"}, "tts_model is only used by the 'openai' and 'coqui' tts engines"),
    ],
)
def test_coqui_options_are_refused_by_other_engines(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_engines(tts="piper", **options)


def test_an_inference_claims_every_core_on_the_cpu_and_one_thread_on_cuda(
    installed: None, tmp_path: Path
) -> None:
    folder = model_folder(tmp_path / "m", "vits", "model.pth")
    cpu = CoquiTTS(folder, limiter=trio.CapacityLimiter(1))
    cuda = CoquiTTS(folder, limiter=trio.CapacityLimiter(1), device="cuda")
    assert cpu._model.cost == default_thread_count()
    assert cuda._model.cost == 1
    assert cpu._model.priority == Priority.SPEAK
    assert "kind='vits'" in repr(cuda)


def test_command_line_passes_the_coqui_options(
    installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneactors.engines import registry

    folder = model_folder(tmp_path / "m", "vits", "model.pth")
    environ = {"PHONEACTORS_TTS_LANGUAGE": "de"}
    argv = ["--tts", "coqui", "--tts-model", str(folder), "--tts-voice", "p225"]
    args = cli.parse_args([*argv, "--tts-device", "CUDA"], environ)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(registry, "build_engines", lambda **options: seen.update(options))
    engines_from_args(args)
    assert seen["tts"] == "coqui"
    assert (seen["tts_model"], seen["tts_voice"]) == (str(folder), "p225")
    assert (seen["tts_language"], seen["tts_device"]) == ("de", "cuda")
    with pytest.raises(SystemExit):
        cli.parse_args(["--tts-device", "tpu"], {})
    engines = build_engines(tts="coqui", tts_model=str(folder), tts_voice="p225", threads=2)
    assert isinstance(engines.tts, CoquiTTS)
    assert engines.tts.limiter is engines.inference
    assert (engines.tts.voice, engines.tts.device) == ("p225", "cpu")


# ============================================================================================
# A real VITS model with random weights


def build_vits(folder: Path, speakers: list[str] | None = None) -> Path:
    """A VITS model folder with random weights: ~250 k parameters, 1 MB, about a second."""
    import torch
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    folder.mkdir(parents=True)
    args = VitsArgs(
        hidden_channels=16,
        hidden_channels_ffn_text_encoder=16,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_rates_decoder=[8, 8, 4],
        upsample_kernel_sizes_decoder=[16, 16, 8],
        upsample_initial_channel_decoder=16,
        use_sdp=False,
        init_discriminator=False,
    )
    config = VitsConfig(model_args=args, use_phonemes=False, text_cleaner="english_cleaners")
    if speakers:
        speakers_file = folder / "speakers.json"
        speakers_file.write_text(json.dumps({name: i for i, name in enumerate(speakers)}))
        for place in (config, config.model_args):
            place.use_speaker_embedding = True
            place.speakers_file = str(speakers_file)
            place.num_speakers = len(speakers)
        config.model_args.speaker_embedding_channels = 8
    torch.manual_seed(0)
    model = Vits(config)
    config.save_json(str(folder / "config.json"))
    torch.save({"model": model.state_dict(), "config": config.to_dict()}, folder / "model.pth")
    return folder


@pytest.fixture(scope="module")
def vits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_COQUI:
        pytest.skip(HOW_TO_ENABLE)
    return build_vits(tmp_path_factory.mktemp("coqui") / "vits")


@pytest.fixture(scope="module")
def vits_speakers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_COQUI:
        pytest.skip(HOW_TO_ENABLE)
    return build_vits(tmp_path_factory.mktemp("coqui") / "vits-speakers", ["alice", "bob"])


@dataclass
class Counted:
    """How often ``TTS.api.TTS`` was made, and ``tts`` called."""

    loads: int = 0
    calls: int = 0


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    import TTS.api

    counts = Counted()
    real = TTS.api.TTS

    class CountedTTS(real):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            counts.loads += 1
            super().__init__(*args, **kwargs)

        def tts(self, *args: Any, **kwargs: Any) -> Any:
            counts.calls += 1
            return super().tts(*args, **kwargs)

    monkeypatch.setattr(TTS.api, "TTS", CountedTTS)
    return counts


def loaded_model(tts: CoquiTTS) -> Any:
    loaded = tts._model.model
    assert loaded is not None
    return loaded


@needs_coqui
async def test_vits_loads_once_warms_up_and_speaks_a_sentence_at_8khz(
    vits: Path, counted: Counted
) -> None:
    slots = InferenceSlots(2)
    tts = CoquiTTS(vits, limiter=slots)
    assert isinstance(tts, TextToSpeech)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:  # many tasks at once: one load
            for _ in range(3):
                nursery.start_soon(tts.load)
        assert (counted.loads, counted.calls) == (1, 1)  # loaded once, warmed up once
        assert slots.waits[Priority.PREPARE].count == 2  # the load and the warm-up
        audio = await tts.synthesize("Hello there, how can I help you today?")
    assert (counted.loads, counted.calls) == (1, 2)
    assert slots.waits[Priority.SPEAK].count == 1
    assert slots.in_use == 0
    assert audio.dtype == np.int16
    assert audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE
    # Random durations, but a length that follows the text: 39 characters at 22.05 kHz came
    # out as 1.6 s here, plus the 0.45 s of silence coqui-tts adds after every sentence.
    assert 0.5 < seconds < 10, seconds
    assert np.abs(audio.astype(np.int32)).max() > 100  # noise, not silence
    loaded = loaded_model(tts)
    assert (loaded.rate, loaded.speaker, loaded.language) == (22050, None, None)
    shorter = await tts.synthesize("Goodbye.")
    assert 0 < len(shorter) < len(audio)


@needs_coqui
async def test_blank_text_is_not_synthesized(vits: Path, counted: Counted) -> None:
    tts = CoquiTTS(vits, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(60):
        assert len(await tts.synthesize("  \n")) == 0
    assert (counted.loads, counted.calls) == (0, 0)


@needs_coqui
async def test_the_speaker_is_chosen_and_a_wrong_one_lists_them(vits_speakers: Path) -> None:
    limiter = trio.CapacityLimiter(1)
    first = CoquiTTS(vits_speakers, limiter=limiter)
    bob = CoquiTTS(vits_speakers, limiter=limiter, voice="bob")
    carol = CoquiTTS(vits_speakers, limiter=limiter, voice="carol")
    with trio.fail_after(60):
        await first.load()
        await bob.load()
        assert len(await bob.synthesize("Hi, this is Bob.")) > 0
        with pytest.raises(
            ConfigurationError, match="has no speaker 'carol'; it has 'alice', 'bob'"
        ):
            await carol.load()
    assert loaded_model(first).speaker == "alice"  # none named: the model's first
    assert loaded_model(bob).speaker == "bob"


@needs_coqui
async def test_a_single_speaker_model_takes_no_voice_or_language(vits: Path) -> None:
    limiter = trio.CapacityLimiter(1)
    with trio.fail_after(60):
        with pytest.raises(ConfigurationError, match=r"no speakers to choose from.*--tts-voice"):
            await CoquiTTS(vits, limiter=limiter, voice="alice").load()
        with pytest.raises(ConfigurationError, match=r"no languages to choose from"):
            await CoquiTTS(vits, limiter=limiter, language="de").load()


@needs_coqui
async def test_a_copied_folder_finds_its_speakers_file(vits_speakers: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied"
    copy.mkdir()
    for name in ("model.pth", "speakers.json"):
        (copy / name).write_bytes((vits_speakers / name).read_bytes())
    settings = json.loads((vits_speakers / "config.json").read_text())
    settings["speakers_file"] = settings["model_args"]["speakers_file"] = "/gone/speakers.json"
    (copy / "config.json").write_text(json.dumps(settings))
    tts = CoquiTTS(copy, limiter=trio.CapacityLimiter(1), voice="bob")
    with trio.fail_after(60):
        await tts.load()
    assert loaded_model(tts).speaker == "bob"
    assert json.loads((copy / "config.json").read_text()) == settings  # left as it was


@needs_coqui
@pytest.mark.parametrize("damage", ["garbage", "other model", "truncated"])
async def test_a_broken_checkpoint_is_a_one_line_start_up_error(
    vits: Path, vits_speakers: Path, tmp_path: Path, damage: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((vits / "config.json").read_text())
    checkpoint = (vits / "model.pth").read_bytes()
    if damage == "garbage":
        checkpoint = b"not a checkpoint at all"
    elif damage == "other model":  # weights of another shape (it has speaker embeddings)
        checkpoint = (vits_speakers / "model.pth").read_bytes()
    else:
        checkpoint = checkpoint[: len(checkpoint) // 2]
    (broken / "model.pth").write_bytes(checkpoint)
    tts = CoquiTTS(broken, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(60), pytest.raises(ConfigurationError) as raised:
        await tts.load()
    message = str(raised.value)
    assert message.startswith(f"coqui: the model {str(broken / 'model.pth')!r} could not be loaded")
    assert "\n" not in message
    assert raised.value.__cause__ is None  # the traceback goes to the debug log only


@needs_coqui
async def test_cuda_without_a_gpu_is_a_start_up_error(vits: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    tts = CoquiTTS(vits, limiter=trio.CapacityLimiter(1), device="cuda")
    with trio.fail_after(60), pytest.raises(ConfigurationError, match="sees no CUDA GPU"):
        await tts.load()


@needs_coqui
async def test_a_failure_while_speaking_is_an_engine_error(
    vits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tts = CoquiTTS(vits, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(60):
        await tts.load()

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(loaded_model(tts).api, "tts", fail)
        with pytest.raises(EngineError, match=r"coqui failed to synthesize 'Hello\.'.*boom"):
            await tts.synthesize("Hello.")


@needs_coqui
async def test_a_cancelled_sentence_returns_at_once_and_keeps_its_threads_till_done(
    vits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = InferenceSlots(2)
    tts = CoquiTTS(vits, limiter=slots)
    with trio.fail_after(60):
        await tts.load()
    api = loaded_model(tts).api
    real = api.tts
    started, release = trio.Event(), threading.Event()
    token = trio.lowlevel.current_trio_token()

    def held(*args: Any, **kwargs: Any) -> Any:
        trio.from_thread.run_sync(started.set, trio_token=token)
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "tts", held)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.synthesize, "This sentence is cut short.")
            await started.wait()
            nursery.cancel_scope.cancel()
        assert slots.in_use == min(2, default_thread_count())  # the worker runs on ...
        release.set()
        await run_inference(lambda: None, limiter=slots, cost=2)  # ... and hands them back
        assert slots.in_use == 0
        monkeypatch.setattr(api, "tts", real)
        assert len(await tts.synthesize("And the next one is whole.")) > 0


# ============================================================================================
# A real XTTS model with random weights


def build_xtts(folder: Path) -> Path:
    """An XTTS model folder with random weights and a small GPT (one layer, 32 channels, at most
    24 audio tokens a sentence): 22 M parameters, 90 MB, mostly its HiFi-GAN decoder and
    speaker encoder, whose sizes are fixed. Two speakers, Ana and Ben; English and German."""
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True)
    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]", "[de]"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;")
    vocabulary = Tokenizer(
        BPE(vocab={token: i for i, token in enumerate(specials + letters)}, merges=[])
    )
    vocabulary.add_special_tokens(specials)
    vocabulary.save(str(folder / "vocab.json"))
    args = XttsArgs(
        gpt_layers=1,
        gpt_n_model_channels=32,
        gpt_n_heads=2,
        decoder_input_dim=32,
        gpt_num_audio_tokens=66,
        gpt_start_audio_token=64,
        gpt_stop_audio_token=65,
        gpt_max_audio_tokens=24,
        gpt_max_text_tokens=100,
        gpt_use_perceiver_resampler=True,
    )
    config = XttsConfig(
        model_args=args, languages=["en", "de"], gpt_cond_len=3, gpt_cond_chunk_len=3
    )
    torch.manual_seed(0)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(folder / "vocab.json")
    model.init_models()
    config.save_json(str(folder / "config.json"))
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    voices = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, 32),
            "speaker_embedding": torch.randn(1, 512, 1),
        }
        for name in ("Ana", "Ben")
    }
    torch.save(voices, folder / "speakers_xtts.pth")
    return folder


@pytest.fixture(scope="module")
def xtts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_COQUI:
        pytest.skip(HOW_TO_ENABLE)
    return build_xtts(tmp_path_factory.mktemp("coqui") / "xtts")


def recording(path: Path, seconds: float, rate: int = 16000, channels: int = 2) -> Path:
    noise = np.random.default_rng(0).normal(0, 3000, int(seconds * rate) * channels)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(noise.astype(np.int16).tobytes())
    return path


@needs_coqui
async def test_a_random_xtts_speaks_as_its_speakers_and_as_a_recording(
    xtts: Path, tmp_path: Path
) -> None:
    limiter = InferenceSlots(2)
    first = CoquiTTS(xtts, limiter=limiter)
    ben = CoquiTTS(xtts, limiter=limiter, voice="Ben", language="de")
    me = CoquiTTS(xtts, limiter=limiter, voice=str(recording(tmp_path / "me.wav", 4)))
    with trio.fail_after(120):
        for tts in (first, ben, me):
            await tts.load()
            audio = await tts.synthesize("Hello there, how are you?")
            assert audio.dtype == np.int16
            assert 0 < len(audio) / SAMPLE_RATE < 5  # at most 24 codes of 1,024 samples
    assert (loaded_model(first).speaker, loaded_model(first).language) == ("Ana", "en")
    assert (loaded_model(ben).speaker, loaded_model(ben).language) == ("Ben", "de")
    assert loaded_model(me).speaker is None  # cloned from the recording, once
    assert loaded_model(me).rate == 24000


@needs_coqui
async def test_a_random_xtts_stops_generating_when_its_sentence_is_cancelled(
    xtts: Path,
) -> None:
    import torch

    tts = CoquiTTS(xtts, limiter=InferenceSlots(2), voice="Ben")
    with trio.fail_after(120):
        await tts.load()
    loaded, text = loaded_model(tts), "A sentence that could go on for a while."
    torch.manual_seed(3)
    whole = coqui._xtts_speak(loaded, text, threading.Event())
    cancelled = threading.Event()
    cancelled.set()  # as synthesize() does when its caller is cancelled
    torch.manual_seed(3)
    cut = coqui._xtts_speak(loaded, text, cancelled)
    assert len(cut) == 1024  # one code, through transformers' generate and its stopping rules
    assert len(whole) > 4 * len(cut)


@needs_coqui
async def test_xtts_with_transformers_5_is_a_start_up_error(
    fake_xtts: tuple[FakeXtts, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    _, folder = fake_xtts
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "5.24.0")
    tts = CoquiTTS(folder, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(30), pytest.raises(ConfigurationError, match=r"transformers<5"):
        await tts.load()


# ============================================================================================
# XTTS, as a fake model object: what is hard to provoke in a real one


@dataclass
class FakeXtts:
    """What the engine uses of coqui-tts's ``Xtts``: speakers, cloning, inference."""

    steps: int = 5
    """Tokens generated per sentence (a real XTTS stops at its own stop token)."""
    hold: threading.Event | None = None
    """If set, each generated token waits for it (0.01 s at most)."""
    generated: list[int] = field(default_factory=list)
    """Tokens generated, sentence by sentence."""
    made: list[dict[str, Any]] = field(default_factory=list)
    """The arguments ``TTS.api.TTS`` was made with, each time."""
    cloned: list[tuple[int, int]] = field(default_factory=list)
    inferred: list[tuple[str, str, Any, Any]] = field(default_factory=list)
    on_token: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.device = "cpu"
        self.config = _Settings(
            languages=["en", "de", "fr"],
            max_ref_len=30,
            sound_norm_refs=False,
            gpt_cond_len=6,
            gpt_cond_chunk_len=6,
            temperature=0.75,
            length_penalty=1.0,
            repetition_penalty=10.0,
            top_k=50,
            top_p=0.85,
        )
        latents = {"gpt_conditioning_latents": "latent-ana", "speaker_embedding": "embed-ana"}
        self.speaker_manager = _Settings(
            speaker_names=["Ana Florence", "Ben"], speakers={"Ana Florence": latents, "Ben": {}}
        )

    def get_speaker_embedding(self, audio: Any, rate: int) -> str:
        self.cloned.append((int(audio.shape[-1]), rate))
        return "embed-clone"

    def get_gpt_cond_latents(self, audio: Any, rate: int, length: int, chunk_length: int) -> str:
        return "latent-clone"

    def inference(
        self, text: str, language: str, latent: Any, embedding: Any, **settings: Any
    ) -> dict[str, Any]:
        import torch

        assert settings["temperature"] == 0.75
        self.inferred.append((text, language, latent, embedding))
        stop = settings["stopping_criteria"]
        ids = torch.zeros((1, 1), dtype=torch.long)
        tokens = 0
        for _ in range(self.steps):
            if self.hold is not None:
                self.hold.wait(0.01)
            if bool(stop(ids, None).all()):
                break
            tokens += 1
            if self.on_token is not None:
                self.on_token()
        self.generated.append(tokens)
        return {"wav": np.full(2400 * tokens, 0.1, dtype=np.float32)}


class _Settings(dict[str, Any]):
    """A Coqpit-like config: keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


@pytest.fixture
def fake_xtts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[FakeXtts, Path]:
    if not HAVE_COQUI:
        pytest.skip(HOW_TO_ENABLE)
    import TTS.api

    xtts = FakeXtts()

    class FakeApi:
        def __init__(self, **kwargs: Any) -> None:
            xtts.made.append(kwargs)
            self.synthesizer = _Settings(output_sample_rate=24000, tts_model=xtts)

    monkeypatch.setattr(TTS.api, "TTS", FakeApi)
    folder = model_folder(tmp_path / "xtts", "xtts", "model.pth", "vocab.json", "speakers_xtts.pth")
    return xtts, folder


@needs_coqui
async def test_xtts_speaks_as_a_named_speaker_in_a_language(
    fake_xtts: tuple[FakeXtts, Path],
) -> None:
    xtts, folder = fake_xtts
    tts = CoquiTTS(folder, limiter=trio.CapacityLimiter(1), language="de")
    with trio.fail_after(30):
        audio = await tts.synthesize("Guten Tag.")
    assert xtts.made == [
        {
            "model_path": str(folder),
            "config_path": str(folder / "config.json"),
            "progress_bar": False,
        }
    ]
    assert xtts.inferred[-1] == ("Guten Tag.", "de", "latent-ana", "embed-ana")  # the first speaker
    assert len(audio) == 5 * 800  # 5 tokens of 2,400 samples at 24 kHz, at 8 kHz


@needs_coqui
async def test_xtts_clones_a_recording_once_read_without_ffmpeg(
    fake_xtts: tuple[FakeXtts, Path], tmp_path: Path
) -> None:
    xtts, folder = fake_xtts
    recording = tmp_path / "me.wav"
    with wave.open(str(recording), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(2 * 16000 * 3, dtype=np.int16).tobytes())  # 3 s
    tts = CoquiTTS(folder, limiter=trio.CapacityLimiter(1), voice=str(recording))
    with trio.fail_after(30):
        await tts.synthesize("Hello.")
        await tts.synthesize("Hello again.")
    assert xtts.cloned == [(3 * 22050, 22050)]  # cloned once, at 22.05 kHz, in mono
    assert [call[1:] for call in xtts.inferred] == [("en", "latent-clone", "embed-clone")] * 3


@needs_coqui
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"language": "ja"}, "has no language 'ja'; it has 'en', 'de', 'fr'"),
        ({"voice": "Zed"}, "has no speaker 'Zed'; it has 'Ana Florence', 'Ben'"),
    ],
)
async def test_xtts_wrong_language_or_speaker_lists_the_choices(
    fake_xtts: tuple[FakeXtts, Path], options: dict[str, str], message: str
) -> None:
    _, folder = fake_xtts
    tts = CoquiTTS(folder, limiter=trio.CapacityLimiter(1), **options)
    with trio.fail_after(30), pytest.raises(ConfigurationError, match=message):
        await tts.load()


@needs_coqui
async def test_xtts_stops_generating_when_its_sentence_is_cancelled(
    fake_xtts: tuple[FakeXtts, Path],
) -> None:
    xtts, folder = fake_xtts
    slots = InferenceSlots(1)
    tts = CoquiTTS(folder, limiter=slots)
    with trio.fail_after(30):
        await tts.load()
    xtts.steps, xtts.hold = 100_000, threading.Event()
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()
    xtts.on_token = lambda: token.run_sync_soon(started.set)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tts.synthesize, "A long sentence that nobody hears.")
            await started.wait()
            nursery.cancel_scope.cancel()
        await run_inference(lambda: None, limiter=slots)  # the worker stops at its next token
    assert xtts.generated[0] == 5  # the warm-up
    assert 0 < xtts.generated[1] < 100_000


# ============================================================================================
# The real server (e2e)


LISTENING = re.compile(r"phoneactors listening on http://127\.0\.0\.1:(\d+) \(.*\)\n")


@pytest.mark.e2e
@needs_coqui
def test_python_m_phoneactors_serves_a_call_with_coqui(vits: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEACTORS_", "TWILIO_"))}
    env["PYTHONPATH"] = str(REPO)
    argv = ["--port", "0", "--tts", "coqui", "--tts-model", str(vits), "--records", "off"]
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "phoneactors", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    greeting: list[np.ndarray] = []

    async def call(port: str) -> None:
        with trio.fail_after(60):
            async with open_twilio_stream(f"ws://127.0.0.1:{port}/stream") as fake:
                await fake.wait_for_bot_to_finish()
                greeting.append(fake.bot_audio)

    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        ready = time.perf_counter() - start
        found = LISTENING.fullmatch(line)
        assert found, line + (server.stderr.read() if server.stderr else "")
        trio.run(call, found.group(1))
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert len(greeting[0]) / SAMPLE_RATE > 0.5  # the greeting, spoken by the random VITS
    print(f"coqui: ready in {ready:.1f} s (imports, whisper and VITS loads, warm-ups)")
