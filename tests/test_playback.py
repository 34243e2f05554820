"""Pausing and resuming a reply: the ledger across a clear, the rewind to a word, the audio store
and the playback control."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from phoneactors.audio import SAMPLE_RATE
from phoneactors.playback import Playback, ReplyAudio, ReplyLedger, rewind
from phoneactors.testing import tone


def test_marks_pending_at_a_clear_are_not_heard_and_playback_resumes_from_the_last_echo() -> None:
    ledger = ReplyLedger("r1")
    first = ledger.add_sentence("One two three four.")
    names = [ledger.chunk_sent(first, f, int(f * 800)) for f in (0.25, 0.5, 0.75, 1.0)]
    assert ledger.resume_point() == (0, 0)  # nothing heard yet: from the start
    assert ledger.mark_echoed(names[0])
    ledger.cleared()
    # Twilio echoes the pending marks on clear: they were never played.
    assert not ledger.mark_echoed(names[1])
    assert not ledger.mark_echoed(names[2])
    assert ledger.resume_point() == (0, 200)
    # Resumed from a little earlier: new marks count again.
    again = [ledger.chunk_sent(first, f, int(f * 800)) for f in (0.25, 0.5, 0.75, 1.0)]
    assert again[0] not in names
    ledger.mark_echoed(again[0])
    ledger.mark_echoed(again[1])
    assert ledger.resume_point() == (0, 400)
    ledger.finished_sending()
    assert not ledger.all_played.is_set()
    ledger.mark_echoed(again[2])
    ledger.mark_echoed(again[3])
    assert ledger.all_played.is_set()
    assert ledger.close().heard == "One two three four."


def test_heard_text_is_the_furthest_place_played_even_after_a_rewind() -> None:
    ledger = ReplyLedger("r1")
    first = ledger.add_sentence("One two three four.")
    second = ledger.add_sentence("Five six.")
    names = [ledger.chunk_sent(first, f, int(f * 800)) for f in (0.5, 1.0)]
    names.append(ledger.chunk_sent(second, 0.5, 400))
    for name in names:
        ledger.mark_echoed(name)
    ledger.cleared()
    rewound = ledger.chunk_sent(second, 0.25, 200)  # played again from a word earlier
    ledger.mark_echoed(rewound)
    assert ledger.resume_point() == (1, 200)
    interruption = ledger.close()
    assert interruption.heard == "One two three four. Five"
    assert interruption.unheard == "six."


def speechlike(words: int, *, gap_ms: int = 60, word_ms: int = 250) -> tuple[np.ndarray, list[int]]:
    """Tones for words with silent gaps between them; also where each word starts."""
    gap = np.zeros(gap_ms * SAMPLE_RATE // 1000, dtype=np.int16)
    pieces, starts, at = [], [], 0
    for i in range(words):
        word = tone(word_ms / 1000, frequency=300 + 40 * i)
        starts.append(at)
        pieces += [word, gap]
        at += len(word) + len(gap)
    return np.concatenate(pieces), starts


def test_rewind_goes_back_to_the_start_of_the_word_being_heard() -> None:
    audio, starts = speechlike(6)
    middle_of_fourth = starts[3] + 1000
    back = rewind(audio, middle_of_fourth)
    assert starts[3] - 480 <= back <= starts[3]  # in the gap before the fourth word
    assert np.abs(audio[back : starts[3]].astype(np.int32)).max() <= 16  # silent: no word cut
    # Already at the start of a word: back to the gap before it, not a word further.
    assert starts[3] - 480 <= rewind(audio, starts[3] + 40) <= starts[3]


def test_rewind_without_a_gap_takes_the_quietest_place_and_never_goes_too_far() -> None:
    audio = tone(3.0, frequency=440)
    audio[8000:8160] //= 50  # one quiet dip, half a second before the offset
    assert abs(rewind(audio, 12000) - 8000) <= 160
    plain = tone(3.0, frequency=440)
    back = rewind(plain, 20000, max_ms=800)
    assert 20000 - 800 * 8 <= back <= 20000
    assert rewind(plain, 100) == 0  # near the start: from the start
    assert rewind(plain, 10**9) <= len(plain)


async def test_reply_audio_keeps_the_synthesizer_a_sentence_ahead(
    autojump_clock: MockClock,
) -> None:
    audio = ReplyAudio(lookahead=1, first=3)
    audio.add(tone(0.1))
    await audio.wait_for_room()  # sentence 4 may be made while 3 plays
    audio.add(tone(0.1))
    with trio.move_on_after(1) as blocked:
        await audio.wait_for_room()
    assert blocked.cancelled_caught  # one ahead of the one playing, no more
    audio.playing(4)
    await audio.wait_for_room()
    assert audio.get(2) is None
    assert audio.get(3) is not None
    assert audio.end == 5
    with trio.move_on_after(1) as waiting:
        await audio.wait_for(5)
    assert waiting.cancelled_caught
    audio.finish()
    await audio.wait_for(5)  # finished: nothing more to wait for
    assert audio.get(5) is None
    with pytest.raises(ValueError, match="lookahead"):
        ReplyAudio(lookahead=0)


async def test_pausing_cancels_the_stretch_being_played(autojump_clock: MockClock) -> None:
    playback = Playback()
    stopped_at: list[float] = []

    async def play() -> None:
        while True:
            with playback.playing():
                await trio.sleep(100)
                return
            stopped_at.append(trio.current_time())
            await playback.wait_resumed()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(play)
        await trio.sleep(1)
        assert playback.pause()
        assert not playback.pause()  # already paused
        await trio.testing.wait_all_tasks_blocked()
        assert stopped_at == [1.0]
        await trio.sleep(1)
        playback.resume()
        await trio.sleep(1)
        assert playback.pause()
        await trio.sleep(1)
        playback.resume()
    assert stopped_at == [1.0, 3.0]
    assert playback.pauses == 2
    assert trio.current_time() == pytest.approx(104.0)
