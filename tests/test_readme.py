"""The README's example bot and its example test run as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from trio.testing import MockClock

README = Path(__file__).parent.parent / "README.md"


def code_block(name: str) -> str:
    """The ```python block whose first line is ``# <name>``."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL):
        if block.startswith(f"# {name}"):
            return str(block)
    raise AssertionError(f"README has no python block starting with '# {name}'")


async def test_readme_bot_passes_the_readme_test(
    autojump_clock: MockClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mybot.py").write_text(code_block("mybot.py"))
    (tmp_path / "readme_test_mybot.py").write_text(code_block("test_mybot.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mybot", raising=False)
    import readme_test_mybot  # type: ignore[import-not-found]

    await readme_test_mybot.test_goodbye_hangs_up(autojump_clock)
