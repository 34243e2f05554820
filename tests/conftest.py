from __future__ import annotations

import pytest

from phoneactors.testing import FakeSpeech


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech()
