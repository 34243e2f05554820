"""The README's example bot and its example test run as written, in a folder of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def code_block(name: str) -> str:
    """The ```python block whose first line is ``# <name>``."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL):
        if block.startswith(f"# {name}"):
            return str(block)
    raise AssertionError(f"README has no python block starting with '# {name}'")


def _own_folder(tmp_path: Path) -> Path:
    """A newcomer's project: README's bot and test, and nothing of ours (no conftest, no
    pytest configuration)."""
    folder = tmp_path / "myproject"
    folder.mkdir()
    (folder / "mybot.py").write_text(code_block("mybot.py"))
    (folder / "test_mybot.py").write_text(code_block("test_mybot.py"))
    return folder


def _environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PHONEACTORS_", "TWILIO_", "PYTEST_"))
    }


def _passes_in(folder: Path, test_file: str) -> None:
    """Run pytest on ``test_file`` in ``folder``, as a user would there: it passes one test."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout


def test_readme_test_passes_when_copied_into_its_own_folder(tmp_path: Path) -> None:
    folder = _own_folder(tmp_path)
    _passes_in(folder, "test_mybot.py")


@pytest.mark.e2e
def test_readme_bot_answers_in_the_simulator_from_its_own_folder(tmp_path: Path) -> None:
    folder = _own_folder(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "phoneactors",
            "simulate",
            "--conversation",
            "mybot:Concierge",
            "--say",
            "What time do you open on Sunday?",
            "--say",
            "ok bye",
        ],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bot: Hello, you have reached the concierge" in done.stdout, done.stdout
    assert "bot: You asked about" in done.stdout, done.stdout
    assert "bot: Goodbye!" in done.stdout, done.stdout


def test_every_option_is_in_the_configuration_table() -> None:
    from phoneactors.cli import OPTIONS

    text = README.read_text()
    for option in OPTIONS:
        assert f"`{option.flag}`" in text, option.flag
        assert f"`{option.env}`" in text, option.env


def test_links_to_files_of_the_repository_lead_somewhere() -> None:
    root = README.parent
    documents = [README, *sorted((root / "docs").glob("*.md"))]
    for document in documents:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", document.read_text()):
            assert (document.parent / target).exists(), f"{document.name}: {target}"


def test_the_contents_line_names_every_section() -> None:
    text = README.read_text()
    anchors = set(re.findall(r"\]\(#([a-z0-9-]+)\)", text))
    for heading in re.findall(r"^## (.+)$", text, flags=re.MULTILINE):
        anchor = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        assert anchor in anchors, heading


def test_the_container_image_uses_real_options_and_files() -> None:
    from phoneactors.cli import OPTIONS

    containerfile = (README.parent / "Containerfile").read_text()
    variables = {option.env for option in OPTIONS}
    for name in re.findall(r"\b(PHONEACTORS_[A-Z_]+)=", containerfile):
        assert name in variables, name
    for copied in re.findall(r"^COPY (.+) \S+$", containerfile, flags=re.MULTILINE):
        for path in copied.split():
            assert (README.parent / path).exists(), path


async def test_the_asyncio_thread_of_the_readme_runs_asyncio_code_and_cancels_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    import trio

    (tmp_path / "readme_asyncio_thread.py").write_text(code_block("asyncio_thread.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import readme_asyncio_thread  # type: ignore[import-not-found]

    bridge = readme_asyncio_thread.AsyncioThread()
    cancelled = asyncio.Event()

    async def asyncio_only(value: int) -> int:
        await asyncio.sleep(0)  # fails under trio itself
        return value * 2

    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        assert await bridge.run(asyncio_only(21)) == 42
        scope = trio.CancelScope()

        async def interrupted() -> None:
            with scope:
                await bridge.run(forever())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupted)
            await trio.to_thread.run_sync(started.wait)
            scope.cancel()  # the trio side is cancelled: so is the asyncio task
        waiter = asyncio.run_coroutine_threadsafe(cancelled.wait(), bridge.loop)
        await trio.to_thread.run_sync(waiter.result, 5)
    finally:
        bridge.close()


async def test_the_lifespan_of_the_readme_opens_and_makes_its_assistants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "readme_assistant.py").write_text(code_block("assistant.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import readme_assistant  # type: ignore[import-not-found]

    from phoneactors.cli import load_conversation
    from phoneactors.conversation import CallInfo, is_lifespan, open_conversations

    lifespan = load_conversation("readme_assistant:lifespan")
    assert is_lifespan(lifespan)
    async with open_conversations(lifespan) as factory:
        bot = factory(CallInfo("CA1", "MZ1", "AC1", {"caller": "+15550100001"}))
        assert isinstance(bot, readme_assistant.Assistant)
        assert bot.caller == "+15550100001"
        assert not bot.client.is_closed
    assert bot.client.is_closed  # closed at shutdown


def test_the_llm_test_of_the_readme_passes_in_a_folder_of_its_own(tmp_path: Path) -> None:
    pytest.importorskip("openai", reason="the llm extra (openai) is not installed")
    folder = tmp_path / "llmproject"
    folder.mkdir()
    (folder / "test_assistant.py").write_text(code_block("test_assistant.py"))
    _passes_in(folder, "test_assistant.py")
