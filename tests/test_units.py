"""The pure pieces of the runtime, without an event loop: sentences, segmentation, playback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoneactors.audio import PCM, SAMPLE_RATE
from phoneactors.errors import ConfigurationError
from phoneactors.playback import SILENCE_FLOOR, ReplyLedger, trim_silence
from phoneactors.segmenter import (
    SegmenterSettings,
    SpeechBegan,
    SpeechEnded,
    SpeechPaused,
    SpeechSegmenter,
)
from phoneactors.sentences import SentenceSplitter, split_sentences

# -- sentences -------------------------------------------------------------------------------


def test_sentences_split_at_ends_but_not_abbreviations_or_decimals() -> None:
    assert split_sentences("Hello there! Mr. Smith paid 3.50 dollars. Really? Yes.\nNext") == [
        "Hello there!",
        "Mr. Smith paid 3.50 dollars.",
        "Really?",
        "Yes.",
        "Next",
    ]


def test_a_sentence_is_released_only_once_it_is_certainly_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []  # might become 3.5
    assert splitter.feed("5 euros. And") == ["It costs 3.5 euros."]
    assert splitter.flush() == ["And"]
    assert splitter.flush() == []


def test_very_long_sentences_are_broken_at_a_comma() -> None:
    text = "word, " * 60
    parts = split_sentences(text)
    assert len(parts) > 1
    assert all(len(p) <= 200 for p in parts)
    assert " ".join(parts).split() == text.split()


@given(st.lists(st.text(max_size=30), max_size=20))
def test_chunking_never_loses_or_reorders_words(chunks: list[str]) -> None:
    splitter = SentenceSplitter()
    out: list[str] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    out += splitter.flush()
    assert " ".join(out).split() == "".join(chunks).split()
    assert all(s.strip() == s and s for s in out)


# -- segmentation ----------------------------------------------------------------------------

FRAME = np.zeros(160, dtype=np.int16)


def feed(segmenter: SpeechSegmenter, pattern: str) -> list[object]:
    """Feed one frame per character: '#' voiced, '.' unvoiced; return the non-None events."""
    events = []
    for i, c in enumerate(pattern):
        frame = np.full(160, i, dtype=np.int16)
        event = segmenter.feed(frame, c == "#")
        if event is not None:
            events.append((i, event))
    return events


def test_speech_starts_after_the_minimum_voiced_duration() -> None:
    segmenter = SpeechSegmenter(SegmenterSettings(min_speech_ms=100, end_silence_ms=100))
    events = feed(segmenter, "....#####......")
    assert [(i, type(e)) for i, e in events] == [(8, SpeechBegan), (13, SpeechEnded)]


def test_a_pause_then_more_speech_is_not_the_end() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=200, incomplete_silence_ms=200, pause_ms=60
    )
    events = feed(SpeechSegmenter(settings), "####....####" + "." * 10)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechBegan, SpeechPaused, SpeechPaused, SpeechEnded]
    ended = events[-1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.continues_pause
    assert ended.pause == 2
    assert ended.silence_ms == 200


def test_the_words_at_a_pause_set_the_silence_that_ends_the_turn() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=40
    )
    # Unjudged: the turn waits the long silence.
    assert [type(e) for _, e in feed(SpeechSegmenter(settings), "####" + "." * 19)] == [
        SpeechBegan,
        SpeechPaused,
    ]
    # Judged complete after the short silence has passed: it ends at once.
    segmenter = SpeechSegmenter(settings)
    [(_, _began), (_, paused)] = feed(segmenter, "####" + "." * 6)
    assert isinstance(paused, SpeechPaused)
    assert segmenter.judged(paused.number + 1, complete=True) is None  # not this pause
    ended = segmenter.judged(paused.number, complete=True)
    assert isinstance(ended, SpeechEnded)
    assert ended.pause == paused.number
    assert ended.silence_ms == 120
    assert segmenter.judged(paused.number, complete=True) is None  # already over
    # Judged complete before the short silence: it ends when that has passed.
    segmenter = SpeechSegmenter(settings)
    [(_, _), (_, paused)] = feed(segmenter, "####..")
    assert isinstance(paused, SpeechPaused)
    assert segmenter.judged(paused.number, complete=True) is None
    assert [type(e) for _, e in feed(segmenter, "...")] == [SpeechEnded]
    # Judged to trail off: it waits the long silence, and speech goes on in time.
    segmenter = SpeechSegmenter(settings)
    [(_, _), (_, paused)] = feed(segmenter, "####..")
    assert isinstance(paused, SpeechPaused)
    assert segmenter.judged(paused.number, complete=False) is None
    assert feed(segmenter, "." * 15 + "##") == []
    # The judgement of a pause the caller has spoken after no longer counts.
    assert segmenter.judged(paused.number, complete=True) is None
    events = feed(segmenter, "." * 5)
    assert [type(e) for _, e in events] == [SpeechPaused]


def feed_levels(
    segmenter: SpeechSegmenter, pattern: str, *, replying: bool = False
) -> list[tuple[int, object]]:
    """One frame per character: '#' loud voiced (RMS 3000), 's' soft voiced (a third: -10 dB),
    'm' murmur (a sixth: -16 dB), 'f' faint voiced (a tenth: -20 dB, voices in the room), '.'
    silence."""
    levels = {"#": 3000.0, "s": 1000.0, "m": 500.0, "f": 300.0, ".": 0.0}
    events = []
    for i, c in enumerate(pattern):
        frame = np.full(160, levels[c], dtype=np.int16)
        event = segmenter.feed(frame, c != ".", replying=replying)
        if event is not None:
            events.append((i, event))
    return events


def test_faint_sound_after_the_caller_counts_toward_the_end_of_their_turn() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=40
    )
    talk = "#" * 20
    # Voices in the room go on after the caller: with faint frames as quiet, a pause comes
    # after faint_pause_ms (240 ms: 12 frames) and the turn ends after the long silence.
    events = feed_levels(SpeechSegmenter(settings), talk + "f" * 40)
    # The caller's loudness is averaged over 60 ms: the first two faint frames are not yet.
    assert [(i - 20, type(e)) for i, e in events[:3]] == [
        (-18, SpeechBegan),
        (2 + 11, SpeechPaused),
        (2 + 19, SpeechEnded),
    ]
    paused, ended = events[1][1], events[2][1]
    assert isinstance(paused, SpeechPaused)
    assert paused.quiet_ms == 240
    assert isinstance(ended, SpeechEnded)
    assert ended.silence_ms == 400
    # Nothing but faint sound since the pause: its audio and transcript are the turn's.
    assert ended.continues_pause
    # The talk, the two frames the average needs to turn faint, and the faint tail as far as
    # the pause (a fading last word is kept; 300 ms at most, so little of the room's words).
    assert len(ended.audio) == len(paused.audio) == (20 + 2 + 12) * 160
    assert np.array_equal(ended.audio, paused.audio)
    # Judged complete at that pause: the short silence ends it.
    segmenter = SpeechSegmenter(settings)
    [(_, _), (_, paused)] = feed_levels(segmenter, talk + "f" * 14)
    assert isinstance(paused, SpeechPaused)
    assert isinstance(segmenter.judged(paused.number, complete=True), SpeechEnded)
    # Without the rule, voiced is voiced: the turn never ends while the room talks.
    off = SegmenterSettings(
        min_speech_ms=60,
        end_silence_ms=100,
        incomplete_silence_ms=400,
        pause_ms=40,
        faint_db=None,
    )
    assert [type(e) for _, e in feed_levels(SpeechSegmenter(off), talk + "f" * 40)] == [SpeechBegan]


def test_a_long_faint_tail_is_trimmed_from_the_audio() -> None:
    """Faint sound after the caller's last word is cut to 300 ms at most (the room's words
    would be transcribed as the caller's), silence to 100 ms; what the last pause handed on
    is what the turn ends with."""
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=2000, pause_ms=40
    )
    # A silent pause, then the room: the turn's audio is the pause's (100 ms of silence).
    segmenter = SpeechSegmenter(settings)
    events = feed_levels(segmenter, "#" * 20 + "..")
    assert isinstance(paused := events[-1][1], SpeechPaused)
    assert len(paused.audio) == (20 + 2) * 160  # the talk and two silent frames
    [(_, ended)] = feed_levels(segmenter, "f" * 100)
    assert isinstance(ended, SpeechEnded)
    assert ended.continues_pause
    assert np.array_equal(ended.audio, paused.audio)
    # Soft speech after the pause is the caller: the turn goes on, with a pause of its own.
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 20 + "..")
    events = feed_levels(segmenter, "s" * 10 + "f" * 102)
    assert [type(e) for _, e in events] == [SpeechPaused, SpeechEnded]
    assert isinstance(ended := events[-1][1], SpeechEnded)
    assert ended.pause == 2
    # The audio of that pause: the faint tail as far as it (240 ms, under the 300 ms kept).
    assert len(ended.audio) == (20 + 2 + 10 + 2 + 12) * 160
    # Without early transcription, a turn ends after 400 ms of faint sound: 300 ms are kept.
    segmenter = SpeechSegmenter(SegmenterSettings(min_speech_ms=60, end_silence_ms=400, pause_ms=0))
    [_, (_, ended)] = feed_levels(segmenter, "#" * 20 + "f" * 22)
    assert isinstance(ended, SpeechEnded)
    assert len(ended.audio) == (20 + 2 + 15) * 160


def test_soft_speech_is_not_faint() -> None:
    """10 dB under the caller's loud level is soft speech, not the room: it keeps the turn open."""
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=40
    )
    events = feed_levels(SpeechSegmenter(settings), "#" * 20 + "s" * 40 + "." * 3)
    assert [type(e) for _, e in events] == [SpeechBegan, SpeechPaused]
    assert events[-1][0] == 20 + 40 + 1  # the pause comes with the silence, not before


def test_a_pause_of_silence_still_comes_at_pause_ms_and_keeps_its_audio() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=40
    )
    segmenter = SpeechSegmenter(settings)
    [(_, _), (at, paused)] = feed_levels(segmenter, "#" * 20 + "..")
    assert isinstance(paused, SpeechPaused)
    assert at == 21
    assert paused.quiet_ms == 40
    assert segmenter.judged(paused.number, complete=True) is None
    [(_, ended)] = feed_levels(segmenter, "...")
    assert isinstance(ended, SpeechEnded)
    assert ended.continues_pause
    assert ended.pause == paused.number


def test_faint_sound_does_not_start_an_utterance_over_the_bot() -> None:
    """Once the caller has said something long enough to set their level, voices faint beside
    it do not interrupt a reply; the caller, and soft speech, still do. Between replies
    everything voiced starts an utterance, as before."""
    settings = SegmenterSettings(min_speech_ms=60, end_silence_ms=100, pause_ms=0)
    segmenter = SpeechSegmenter(settings)
    # Before the caller has set a level, the room interrupts the bot like anything else.
    assert [type(e) for _, e in feed_levels(segmenter, "f" * 5, replying=True)] == [SpeechBegan]
    feed_levels(segmenter, "." * 5)
    assert not segmenter.speaking
    # The caller talks for 0.6 s: their level is known from now on.
    assert [type(e) for _, e in feed_levels(segmenter, "#" * 30 + "." * 5)] == [
        SpeechBegan,
        SpeechEnded,
    ]
    assert feed_levels(segmenter, "f" * 200, replying=True) == []
    assert not segmenter.speaking
    # The caller speaks over the room: heard at once, as is soft speech 10 dB under.
    [(at, began)] = feed_levels(segmenter, "##" + "#" * 3, replying=True)
    assert isinstance(began, SpeechBegan)
    assert at == 2
    feed_levels(segmenter, "." * 5)
    [(at, began)] = feed_levels(segmenter, "sss", replying=True)
    assert isinstance(began, SpeechBegan)
    assert at == 2
    feed_levels(segmenter, "." * 5)
    # No reply in progress: the room is heard (the caller's level decides within it).
    [(_, began)] = feed_levels(segmenter, "fff")
    assert isinstance(began, SpeechBegan)


def test_faint_sound_does_not_lower_the_callers_level() -> None:
    """Voices in the room go on long after the caller stops: they never become the level
    they are faint beside, so the turn still ends however long they last."""
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=10_000, pause_ms=40
    )
    events = feed_levels(SpeechSegmenter(settings), "#" * 20 + "f" * 502)
    assert [(i, type(e)) for i, e in events if not isinstance(e, SpeechPaused)] == [
        (2, SpeechBegan),
        (20 + 2 + 499, SpeechEnded),  # 60 ms of averaging, then 10 s of quiet
    ]


def test_an_utterance_begun_over_a_reply_is_measured_against_the_callers_level() -> None:
    """Soft sound (10 dB under the caller) begins an utterance over the reply; the fainter
    sound after it is quiet beside the caller, though not beside the soft sound, and ends
    it. Between replies, the utterance's own level decides."""
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=40
    )
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 30 + "." * 25)
    events = feed_levels(segmenter, "sss" + "f" * 40, replying=True)
    assert [(i, type(e)) for i, e in events] == [
        (2, SpeechBegan),
        (3 + 11, SpeechPaused),  # faint from the first 'f': faint_pause_ms
        (3 + 19, SpeechEnded),
    ]
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 30 + "." * 25)
    assert [type(e) for _, e in feed_levels(segmenter, "sss" + "f" * 40)] == [SpeechBegan]


def test_over_the_bot_speech_starts_only_with_a_frame_near_the_callers_level() -> None:
    """Sound 10-15 dB under the caller is not faint, but a start needs one frame within 10 dB
    of their level: the room's loudest moments do not pause the reply, the caller's vowels
    do, however faint the consonants around them."""
    settings = SegmenterSettings(min_speech_ms=160, end_silence_ms=100, pause_ms=0)
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 40 + "." * 10)
    level = {"#": 3000.0, "r": 800.0, "f": 300.0, ".": 0.0}  # 'r': a loud room, -11.5 dB

    def feed(pattern: str) -> list[tuple[int, object]]:
        events = []
        for i, c in enumerate(pattern):
            frame = np.full(160, level[c], dtype=np.int16)
            if (event := segmenter.feed(frame, c != ".", replying=True)) is not None:
                events.append((i, event))
        return events

    assert feed("r" * 40) == []
    assert not segmenter.speaking
    # A word: faint consonants, then a vowel. It starts with its eighth voiced frame, as it
    # would with no reply playing.
    [(at, began)] = feed("." * 12 + "fff" + "#" * 5)
    assert isinstance(began, SpeechBegan)
    assert at == 12 + 7


def test_a_short_sound_does_not_set_the_callers_level() -> None:
    settings = SegmenterSettings(min_speech_ms=60, end_silence_ms=100, pause_ms=0)
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 25 + "." * 5)  # under 0.5 s after speech started: a cough
    assert [type(e) for _, e in feed_levels(segmenter, "fff", replying=True)] == [SpeechBegan]
    # Nor with the faint rule off, however long the caller talked.
    segmenter = SpeechSegmenter(
        SegmenterSettings(min_speech_ms=60, end_silence_ms=100, pause_ms=0, faint_db=None)
    )
    feed_levels(segmenter, "#" * 100 + "." * 5)
    assert [type(e) for _, e in feed_levels(segmenter, "fff", replying=True)] == [SpeechBegan]


def test_the_callers_level_is_the_loudest_of_their_last_three_utterances() -> None:
    settings = SegmenterSettings(min_speech_ms=60, end_silence_ms=100, pause_ms=0)
    segmenter = SpeechSegmenter(settings)
    feed_levels(segmenter, "#" * 30 + "." * 5)
    # Two soft utterances (10 dB under): the loud one still sets the level, and a murmur (16 dB
    # under it, 6 dB under the soft ones) is faint.
    for _ in range(2):
        feed_levels(segmenter, "s" * 30 + "." * 5)
    assert feed_levels(segmenter, "m" * 20, replying=True) == []
    # A third soft one pushes the loud one out: the caller is quieter now, and a murmur beside
    # them interrupts.
    feed_levels(segmenter, "." * 5 + "s" * 30 + "." * 5)
    assert [type(e) for _, e in feed_levels(segmenter, "mmm", replying=True)] == [SpeechBegan]


@pytest.mark.parametrize("faint_db", [0.0, -3.0, float("inf"), float("nan")])
def test_faint_db_must_be_above_zero_or_none(faint_db: float) -> None:
    with pytest.raises(ConfigurationError, match="faint_db"):
        SegmenterSettings(faint_db=faint_db)


def test_without_early_transcription_the_short_silence_ends_every_turn() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=100, incomplete_silence_ms=400, pause_ms=0
    )
    events = feed(SpeechSegmenter(settings), "####" + "." * 5)
    assert [type(e) for _, e in events] == [SpeechBegan, SpeechEnded]


def test_clicks_shorter_than_the_minimum_never_start_speech() -> None:
    segmenter = SpeechSegmenter(SegmenterSettings(min_speech_ms=100))
    assert feed(segmenter, "#..##...#.#....##.." * 5) == []


def test_utterance_keeps_pre_roll_and_drops_long_trailing_silence() -> None:
    settings = SegmenterSettings(
        min_speech_ms=60, end_silence_ms=400, incomplete_silence_ms=400, pre_roll_ms=40
    )
    segmenter = SpeechSegmenter(settings)
    events = feed(segmenter, "......###" + "#" * 10 + "." * 20)
    (_, _began), (_, paused), (end, ended) = events
    assert isinstance(paused, SpeechPaused)
    assert isinstance(ended, SpeechEnded)
    assert ended.continues_pause
    assert np.array_equal(paused.audio, ended.audio)  # the early transcript holds
    assert isinstance(ended, SpeechEnded)
    first_sample = int(ended.audio[0])
    assert first_sample <= 6 - 2  # pre-roll reaches back before the first voiced frame
    assert len(ended.audio) // 160 < end - first_sample + 1  # trailing silence trimmed
    assert not ended.truncated


def test_a_monologue_is_cut_at_the_maximum_length() -> None:
    segmenter = SpeechSegmenter(SegmenterSettings(max_utterance_ms=1000))
    events = feed(segmenter, "#" * 120)
    ends = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert ends
    assert ends[0].truncated
    assert ends[0].duration_ms <= 1000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_speech_ms": 0},
        {"end_silence_ms": 5},
        {"pre_roll_ms": -1},
        {"end_silence_ms": 500, "incomplete_silence_ms": 400},
    ],
)
def test_bad_segmenter_settings_are_configuration_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError):
        SegmenterSettings(**kwargs)


# -- playback ledger -------------------------------------------------------------------------


def test_heard_and_unheard_follow_the_last_echoed_mark() -> None:
    ledger = ReplyLedger("r1")
    first = ledger.add_sentence("One two three four.")
    names = [ledger.chunk_sent(first, f) for f in (0.25, 0.5, 0.75, 1.0)]
    second = ledger.add_sentence("Five six.")
    more = [ledger.chunk_sent(second, f) for f in (0.5, 1.0)]
    ledger.add_sentence("Never synthesized.")
    assert ledger.mark_echoed(names[3])
    assert ledger.mark_echoed(more[0])
    assert not ledger.mark_echoed("r2.0")  # another reply's mark
    assert not ledger.mark_echoed("garbage")
    interruption = ledger.close()
    assert interruption.heard == "One two three four. Five"
    assert interruption.unheard == "six. Never synthesized."
    assert not ledger.mark_echoed(more[1])  # echoes after clear were never heard


def test_nothing_heard_before_the_first_echo() -> None:
    ledger = ReplyLedger("r1")
    ledger.chunk_sent(ledger.add_sentence("Hello."), 1.0)
    assert ledger.close().heard == ""


def test_all_played_is_set_by_the_final_echo() -> None:
    ledger = ReplyLedger("r1")
    names = [ledger.chunk_sent(ledger.add_sentence("Hi."), f) for f in (0.5, 1.0)]
    ledger.mark_echoed(names[0])
    ledger.finished_sending()
    assert not ledger.all_played.is_set()
    ledger.mark_echoed(names[1])
    assert ledger.all_played.is_set()


# -- trimming the silence around synthesized sentences ---------------------------------------


def padded(before_ms: int, sound_ms: int, after_ms: int, level: int = 1000) -> PCM:
    ms = SAMPLE_RATE // 1000
    return np.concatenate(
        [
            np.zeros(before_ms * ms, dtype=np.int16),
            np.full(sound_ms * ms, level, dtype=np.int16),
            np.zeros(after_ms * ms, dtype=np.int16),
        ]
    )


def test_trim_silence_keeps_at_most_the_given_silence_around_the_sound() -> None:
    trimmed = trim_silence(padded(300, 500, 400), leading_ms=20, trailing_ms=200)
    assert len(trimmed) == (20 + 500 + 200) * SAMPLE_RATE // 1000
    assert np.all(trimmed[: 20 * SAMPLE_RATE // 1000] == 0)
    assert trimmed[20 * SAMPLE_RATE // 1000] == 1000


def test_trim_silence_never_adds_or_cuts_into_the_sound() -> None:
    short = padded(10, 500, 50)
    assert len(trim_silence(short, leading_ms=20, trailing_ms=200)) == len(short)
    assert len(trim_silence(padded(0, 500, 0), leading_ms=0, trailing_ms=0)) == 500 * 8


def test_trim_silence_keeps_quiet_sound_above_the_floor() -> None:
    # Sound just above the floor (about -66 dBFS) is sound, not padding.
    quiet = padded(300, 200, 300, level=SILENCE_FLOOR + 1)
    assert len(trim_silence(quiet, leading_ms=0, trailing_ms=0)) == 200 * 8


def test_trim_silence_none_keeps_that_side() -> None:
    audio = padded(300, 500, 400)
    assert len(trim_silence(audio, leading_ms=None, trailing_ms=0)) == (300 + 500) * 8
    assert len(trim_silence(audio, leading_ms=0, trailing_ms=None)) == (500 + 400) * 8
    assert trim_silence(audio, leading_ms=None, trailing_ms=None) is audio


def test_trim_silence_of_silence_is_empty() -> None:
    assert len(trim_silence(np.zeros(8000, dtype=np.int16), leading_ms=20, trailing_ms=200)) == 0
    assert len(trim_silence(np.zeros(0, dtype=np.int16), leading_ms=20, trailing_ms=200)) == 0


def test_trim_silence_rejects_negative_durations() -> None:
    with pytest.raises(ValueError, match="at least 0 ms"):
        trim_silence(padded(10, 10, 10), leading_ms=-1, trailing_ms=0)


def test_speech_starts_on_the_vads_frames_once_a_few_are_clear_of_the_line_noise() -> None:
    """On a hissy line the soft start of a word is voiced to the VAD but under the noise gate:
    it counts toward ``min_speech_ms`` once four frames are clear. Hiss the VAD calls speech,
    never clear, starts nothing, nor does a click; within an utterance only clear frames are
    speech (the VAD's hangover does not keep the turn open)."""
    settings = SegmenterSettings(min_speech_ms=160, end_silence_ms=100, pause_ms=0)

    def feed(segmenter: SpeechSegmenter, pattern: str) -> list[tuple[int, object]]:
        # 'v': voiced to the VAD only; 'c': voiced and clear; 'g': over the gate only;
        # '.': neither.
        events = []
        for i, c in enumerate(pattern):
            frame = np.full(160, 1000 if c == "c" else 200, dtype=np.int16)
            event = segmenter.feed(frame, c in "vc", clear=c == "c", over=c in "cg")
            if event is not None:
                events.append((i, event))
        return events

    # Four soft frames, then the vowel: speech starts with the eighth voiced frame, as it
    # would on a clean line, not with the eighth clear one.
    segmenter = SpeechSegmenter(settings)
    [(at, began)] = feed(segmenter, "vvvv" + "cccc")
    assert isinstance(began, SpeechBegan)
    assert at == 7
    # Three clear frames are not enough, however long the VAD hears speech.
    segmenter = SpeechSegmenter(settings)
    assert feed(segmenter, "v" * 50 + "vcccv" + "v" * 50) == []
    # Frames over the gate count as the VAD's do: a soft start the VAD missed ("Twenty" on a
    # hissy line) ...
    segmenter = SpeechSegmenter(settings)
    [(at, began)] = feed(segmenter, "gggg" + "cccc")
    assert isinstance(began, SpeechBegan)
    assert (at, began.frames_voiced, began.began_ms) == (7, 8, 160)
    segmenter = SpeechSegmenter(settings)
    [(at, _)] = feed(segmenter, "gg.vg" + "cccc")
    assert at == 8
    # ... but sound over the gate that the VAD never calls speech (a door, a rustle) starts
    # nothing, nor do three clear frames among it.
    segmenter = SpeechSegmenter(settings)
    assert feed(segmenter, "g" * 50 + "gcccg" + "g" * 50) == []
    # After speech started, VAD-only frames are quiet: the turn ends 100 ms after the last
    # clear frame.
    segmenter = SpeechSegmenter(settings)
    events = feed(segmenter, "cccccccc" + "c" * 10 + "v" * 20)
    assert [(i, type(e)) for i, e in events] == [(7, SpeechBegan), (18 + 4, SpeechEnded)]
    # Without a gate's verdict, voiced is clear.
    segmenter = SpeechSegmenter(settings)
    frame = np.full(160, 200, dtype=np.int16)
    events = [segmenter.feed(frame, True) for _ in range(8)]
    assert [type(e) for e in events] == [type(None)] * 7 + [SpeechBegan]
