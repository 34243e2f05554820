"""The public surface: a curated ``__init__``, no side effects at import, one error tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import phoneactors
from phoneactors import errors


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(phoneactors) if not name.startswith("_")}
    modules = {name for name, value in vars(phoneactors).items() if type(value) is type(sys)}
    assert set(phoneactors.__all__) == public - modules - {"annotations"}
    for name in phoneactors.__all__:
        assert getattr(phoneactors, name).__module__.startswith("phoneactors.")


def test_importing_loads_no_models_and_configures_no_logging() -> None:
    code = (
        "import logging, sys, phoneactors, phoneactors.testing\n"
        "heavy = {'faster_whisper', 'ctranslate2', 'hibari', 'onnxruntime', 'pywhispercpp',"
        " 'quart', 'hypercorn'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "print(logging.getLogger().handlers, logging.getLogger('phoneactors').handlers)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "[] []"]


def test_every_error_derives_from_the_root() -> None:
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 7
    for cls in classes:
        assert issubclass(cls, errors.PhoneActorsError)
        assert cls.__name__ in (errors.__doc__ or "")


@pytest.mark.parametrize(
    "module",
    [
        "twilio",
        "twilio_events",
        "twilio_parse",
        "audio",
        "sentences",
        "segmenter",
        "timing",
        "wer",
        "endpointing",
        "read_out",
        "noise",
        "nonspeech",
        "sounds",
        "messages",
    ],
)
def test_sans_io_modules_import_no_event_loop(module: str) -> None:
    """The protocol, codec and other pure modules pull in no event loop or web framework.

    The package ``__init__`` re-exports the call runtime (which needs trio), so the fresh
    interpreter gets a bare ``phoneactors`` package first: this checks the module itself.
    """
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, types\n"
        "package = types.ModuleType('phoneactors')\n"
        f"package.__path__ = [{str(root / 'phoneactors')!r}]\n"
        "sys.modules['phoneactors'] = package\n"
        f"import phoneactors.{module}\n"
        "loaded = sorted(m for m in sys.modules\n"
        "                if m.split('.')[0] in {'trio', 'quart', 'quart_trio', 'hypercorn'})\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=root)
