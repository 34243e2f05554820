"""The segmenter's bit window against the plain definition: a deque of verdicts, summed.

The behaviour itself (pre-roll, pauses, trailing silence) is tested in ``test_units.py``.
"""

from __future__ import annotations

import collections

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from phoneactors.audio import FRAME_MS
from phoneactors.segmenter import (
    SegmenterSettings,
    SpeechBegan,
    SpeechEnded,
    SpeechPaused,
    SpeechSegmenter,
)

FRAME = np.zeros(160, dtype=np.int16)


def starts_by_definition(
    settings: SegmenterSettings, verdicts: list[bool]
) -> list[tuple[int, int]]:
    """Frames at which speech starts: ``min_speech_ms`` voiced within the last one and a half
    times that, counted afresh after each utterance ends; the rest of the segmenter replayed.
    Each start comes with the frames since the oldest voiced one in that window (inclusive)."""
    needed = -(-settings.min_speech_ms // FRAME_MS)
    window: collections.deque[bool] = collections.deque(maxlen=needed + needed // 2)
    end_frames = -(-settings.end_silence_ms // FRAME_MS)
    pause_frames = -(-settings.pause_ms // FRAME_MS)
    if 0 < pause_frames < end_frames:  # unjudged words: the long silence ends the turn
        end_frames = -(-settings.incomplete_silence_ms // FRAME_MS)
    max_frames = settings.max_utterance_ms // FRAME_MS
    pre_roll = settings.pre_roll_ms // FRAME_MS + needed + needed // 2
    starts = []
    speaking, frames, silent_run, history = False, 0, 0, 0
    for i, voiced in enumerate(verdicts):
        if not speaking:
            history = min(history + 1, pre_roll)
            window.append(voiced)
            if sum(window) >= needed:
                starts.append((i, len(window) - list(window).index(True)))
                speaking, frames, silent_run, history = True, history, 0, 0
                window.clear()
            continue
        frames += 1
        silent_run = 0 if voiced else silent_run + 1
        if silent_run >= end_frames or frames >= max_frames:
            speaking = False
    return starts


settings_strategy = st.integers(FRAME_MS, 400).flatmap(
    lambda end: st.builds(
        SegmenterSettings,
        min_speech_ms=st.integers(FRAME_MS, 400),
        end_silence_ms=st.just(end),
        incomplete_silence_ms=st.integers(end, 800),
        pre_roll_ms=st.integers(0, 200),
        max_utterance_ms=st.integers(FRAME_MS, 2000),
        pause_ms=st.integers(0, 300),
    )
)


@given(settings_strategy, st.lists(st.booleans(), max_size=400))
def test_speech_starts_where_the_definition_says(
    settings: SegmenterSettings, verdicts: list[bool]
) -> None:
    segmenter = SpeechSegmenter(settings)
    starts, counts = [], []
    for i, voiced in enumerate(verdicts):
        event = segmenter.feed(FRAME, voiced)
        assert isinstance(event, SpeechBegan | SpeechPaused | SpeechEnded | None)
        if isinstance(event, SpeechBegan):
            starts.append((i, event.began_ms // FRAME_MS))
            counts.append(event.frames_voiced)
    assert starts == starts_by_definition(settings, verdicts)
    needed = -(-settings.min_speech_ms // FRAME_MS)
    assert all(needed <= count <= needed + needed // 2 for count in counts)


@given(st.lists(st.booleans(), max_size=200))
def test_verdicts_may_be_any_truthy_values(verdicts: list[bool]) -> None:
    """A detector may answer with numpy booleans or 0 and 1: the same events."""
    as_bools, as_numpy, as_ints = SpeechSegmenter(), SpeechSegmenter(), SpeechSegmenter()
    for voiced in verdicts:
        expected = as_bools.feed(FRAME, voiced)
        for segmenter, verdict in ((as_numpy, np.bool_(voiced)), (as_ints, int(voiced))):
            event = segmenter.feed(FRAME, verdict)  # type: ignore[arg-type]
            assert type(event) is type(expected)
            if isinstance(event, SpeechBegan):
                assert event == expected
