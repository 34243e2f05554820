"""Call recordings: the two sides placed in line time, and a server that writes them."""

from __future__ import annotations

import numpy as np

from phoneactors.recording import StereoTimeline


def tone(samples: int, value: int) -> np.ndarray:
    return np.full(samples, value, dtype=np.int16)


def test_the_caller_goes_by_timestamp_and_the_bot_back_to_back_from_when_it_was_sent() -> None:
    timeline = StereoTimeline()
    timeline.caller(160, tone(160, 1))  # 20 ms in
    timeline.bot(0, tone(800, 2))  # sent at once: plays from 0
    timeline.bot(100, tone(800, 3))  # sent early: plays after the first
    left, right = timeline.take(2000)
    assert left[:160].tolist() == [0] * 160
    assert left[160:320].tolist() == [1] * 160
    assert right[:800].tolist() == [2] * 800
    assert right[800:1600].tolist() == [3] * 800
    assert right[1600:].tolist() == [0] * 400
    assert timeline.taken == 2000


def test_a_clear_cuts_what_had_not_played() -> None:
    timeline = StereoTimeline()
    timeline.bot(0, tone(8000, 5))  # a second of reply, sent ahead
    timeline.clear(2400)  # the caller spoke 0.3 s in
    assert timeline.bot_end == 2400
    timeline.bot(4000, tone(800, 6))  # the next reply
    _, right = timeline.take(8000)
    assert right[:2400].tolist() == [5] * 2400
    assert right[2400:4000].tolist() == [0] * 1600
    assert right[4000:4800].tolist() == [6] * 800


def test_what_was_taken_is_final() -> None:
    timeline = StereoTimeline()
    timeline.bot(0, tone(1600, 7))
    first_left, first_right = timeline.take(800)
    assert first_right.tolist() == [7] * 800
    timeline.clear(400)  # too late for the part already written
    timeline.caller(0, tone(1600, 8))  # late caller audio: only its unwritten part lands
    left, right = timeline.take(1600)
    assert right.tolist() == [0] * 800
    assert left.tolist() == [8] * 800
    assert len(first_left) == 800
