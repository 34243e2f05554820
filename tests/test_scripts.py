"""The quick-start scripts: they set themselves up and work from the user's own folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent

TIMEBOT = """
from phoneactors import Conversation


class TimeBot(Conversation):
    async def reply(self, text: str) -> str:
        return "It is noon."
"""


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PHONEACTORS_", "TWILIO_"))}


def test_serve_script_finds_the_bot_in_the_folder_it_is_run_from(tmp_path: Path) -> None:
    (tmp_path / "timebot.py").write_text(TIMEBOT)
    # A class the module lacks: the server stops before loading any engine, and the message
    # shows that the module itself was found (in the caller's folder, not the checkout).
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "serve.sh"), "--conversation", "timebot:Clock"],
        cwd=tmp_path,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "'timebot' has no attribute 'Clock'" in done.stderr
    assert not (ROOT / "timebot.py").exists()


def _fake_checkout(tmp_path: Path) -> Path:
    """A copy of setup.sh and pyproject.toml with a .venv whose python only logs its arguments."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup.sh").write_text((ROOT / "scripts" / "setup.sh").read_text())
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/../../pip.log"\n')
    python.chmod(0o755)
    return tmp_path


def _set_up(checkout: Path, extras: str) -> list[str]:
    log = checkout / "pip.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh"), extras],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_setup_installs_once_and_accepts_an_install_with_more_extras(tmp_path: Path) -> None:
    checkout = _fake_checkout(tmp_path)
    assert _set_up(checkout, "dev,piper")[-1] == "-m pip install --quiet -e .[dev,piper]"
    assert _set_up(checkout, "dev,piper") == []  # nothing changed
    assert _set_up(checkout, "") == []  # serve.sh after test.sh: the base is installed
    assert _set_up(checkout, "piper") == []
    assert _set_up(checkout, "remote")[-1] == "-m pip install --quiet -e .[remote]"
    stamps = sorted(p.name for p in (checkout / ".venv").glob(".installed*"))
    assert stamps == [".installed-dev,piper", ".installed-remote"]
    os.utime(checkout / "pyproject.toml", (2e9, 2e9))  # edited after every install
    assert _set_up(checkout, "")[-1] == "-m pip install --quiet -e ."
