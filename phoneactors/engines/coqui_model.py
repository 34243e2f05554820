"""Coqui TTS model folders: what one holds, and whether coqui-tts is there to load it.

File work only (no torch, no coqui-tts import), for :mod:`phoneactors.engines.coqui` and its
start-up checks.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigurationError, ModelNotFoundError

__all__ = [
    "CHECKPOINT_NAMES",
    "EXTRA",
    "FILE_SETTINGS",
    "HOW_TO_GET_A_MODEL",
    "NOT_CHECKPOINTS",
    "ModelFolder",
    "check_setup",
    "find_model",
    "listed",
    "missing_packages",
    "relocated",
]

EXTRA: Final = "pip install 'phoneactors[coqui]'"
HOW_TO_GET_A_MODEL: Final = (
    "No Coqui model ships in any pip package and phoneactors never downloads one: on a machine "
    "with network access, with coqui-tts installed, run tts --list_models, then e.g. "
    "tts --model_name tts_models/en/ljspeech/vits --text Hello --out_path hello.wav (or "
    "tts_models/multilingual/multi-dataset/xtts_v2); the model lands in a folder of its own "
    "(on Linux under ~/.local/share/tts/): copy that folder here and pass it with --tts-model."
)
CHECKPOINT_NAMES: Final = ("model.pth", "model_file.pth", "best_model.pth", "model_file.pth.tar")
"""Checkpoint names looked for first in a model folder, in this order."""
NOT_CHECKPOINTS: Final = frozenset(
    {"speakers.pth", "speakers_xtts.pth", "dvae.pth", "mel_stats.pth", "d_vector.pth"}
)
"""``.pth`` files that models keep beside their checkpoint."""
FILE_SETTINGS: Final = (
    "speakers_file",
    "d_vector_file",
    "language_ids_file",
    "speaker_encoder_model_path",
    "speaker_encoder_config_path",
)
"""Settings of a Coqui config (at its top and in its ``model_args``) that name files of the
model; coqui-tts writes them as absolute paths into the folder it downloads a model to."""
_LISTED: Final = 12
"""Speakers or languages listed at most in an error."""


@dataclass(frozen=True)
class ModelFolder:
    """What :func:`find_model` found: the folder, its config, the checkpoint, the model kind."""

    folder: Path
    config: Path
    checkpoint: Path
    """The checkpoint file (for XTTS, its ``model.pth``)."""
    kind: str
    """The config's ``model`` (``vits``, ``xtts``, ...), lower case."""

    @property
    def is_xtts(self) -> bool:
        return self.kind == "xtts"


def missing_packages() -> list[str]:
    """The packages of the ``coqui`` extra that the engine imports and are not installed
    (looked for, not imported)."""
    wanted = (("TTS", "coqui-tts"), ("torch", "torch"), ("torchaudio", "torchaudio"))
    return [package for module, package in wanted if importlib.util.find_spec(module) is None]


def check_setup(model: str | Path | None) -> None:
    """Say in one error all that the engine lacks: the packages of the extra (a
    :class:`ConfigurationError` naming it), a model (a
    :class:`~phoneactors.errors.ModelNotFoundError` saying how to get one), or both."""
    missing = missing_packages()
    needs = []
    if missing:
        needs.append(
            f"the package(s) {', '.join(missing)} ({EXTRA}; for a CPU-only or CUDA build of "
            "torch see the README)"
        )
    if model is None:
        needs.append("the folder of a Coqui model as tts_model (none ships with any package)")
    if not needs:
        return
    message = f"the 'coqui' text-to-speech engine needs {' and '.join(needs)}"
    if missing:
        raise ConfigurationError(message)
    raise ModelNotFoundError(f"{message}. {HOW_TO_GET_A_MODEL}")


def find_model(model: str | Path) -> ModelFolder:
    """The model folder ``model`` (or a checkpoint file in one), checked without loading it.

    Raises :class:`~phoneactors.errors.ModelNotFoundError` (saying how to get a model) when the
    path does not exist, has no readable ``config.json``, or no checkpoint can be told apart.
    """
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"the Coqui model {str(path)!r} does not exist: name the folder of a Coqui model "
            f"(its config.json and checkpoint). {HOW_TO_GET_A_MODEL}"
        )
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if not config.is_file():
        raise ModelNotFoundError(
            f"the Coqui model folder {str(folder)!r} has no config.json, so it is not a Coqui "
            f"model folder. {HOW_TO_GET_A_MODEL}"
        )
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
        kind = str(settings["model"]).strip().lower()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(
            f"the Coqui model config {str(config)!r} cannot be read as a Coqui config "
            f"(a JSON object with a 'model'): {exc!r}"
        ) from None
    if path.is_file():
        checkpoint = path
    elif kind == "xtts":
        checkpoint = folder / "model.pth"
    else:
        checkpoint = _checkpoint_in(folder)
    if not checkpoint.is_file():
        raise ModelNotFoundError(
            f"the Coqui {kind} model folder {str(folder)!r} has no {checkpoint.name}. "
            f"{HOW_TO_GET_A_MODEL}"
        )
    if kind == "xtts" and not (folder / "vocab.json").is_file():
        raise ModelNotFoundError(
            f"the XTTS model folder {str(folder)!r} has no vocab.json (an XTTS folder holds "
            f"config.json, model.pth and vocab.json). {HOW_TO_GET_A_MODEL}"
        )
    return ModelFolder(folder, config, checkpoint, kind)


def _checkpoint_in(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    others = sorted(
        p for p in folder.iterdir() if p.name.endswith((".pth", ".pth.tar")) and p.is_file()
    )
    others = [p for p in others if p.name not in NOT_CHECKPOINTS]
    if len(others) == 1:
        return others[0]
    if not others:
        raise ModelNotFoundError(
            f"the Coqui model folder {str(folder)!r} has a config.json but no checkpoint "
            f"({' or '.join(CHECKPOINT_NAMES)}, or another .pth file). {HOW_TO_GET_A_MODEL}"
        )
    names = ", ".join(p.name for p in others)
    raise ModelNotFoundError(
        f"the Coqui model folder {str(folder)!r} has several checkpoints ({names}): name the one "
        "to use, as the path of that file"
    )


def relocated(settings: dict[str, Any], folder: Path) -> bool:
    """Point the file settings of a config (:data:`FILE_SETTINGS`, and ``audio.stats_path``)
    that name a file which is not there at the file of the same name in ``folder``, if it is
    there: a model folder copied from where coqui-tts downloaded it still names the files in
    the old place. Changes ``settings`` in place; says whether anything changed."""
    sections = {"": FILE_SETTINGS, "model_args": FILE_SETTINGS, "audio": ("stats_path",)}
    changed = False
    for section, names in sections.items():
        place = settings.get(section) if section else settings
        if not isinstance(place, dict):
            continue
        for name in names:
            value = place.get(name)
            moved = (
                [_moved(path, folder) for path in value]
                if isinstance(value, list)
                else _moved(value, folder)
            )
            if moved != value:
                place[name] = moved
                changed = True
    return changed


def _moved(path: object, folder: Path) -> object:
    """``path`` in ``folder`` if it names a file that is not there but is in ``folder``."""
    if not isinstance(path, str) or not path or Path(path).exists():
        return path
    here = folder / Path(path).name
    return str(here) if here.is_file() else path


def listed(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
