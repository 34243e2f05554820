"""The terminal simulator: a whole call in-process, the transcript printed as it happens.

Most tests run :func:`phoneactors.simulate.simulate` with the fake engines under ``MockClock``
(instant, deterministic); the last one runs ``phoneactors simulate --say …`` through ``main()``
with the real default engines, in real time.
"""

from __future__ import annotations

import io
import os
import re
import sys
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import trio
from trio.testing import MockClock

from examples.goodbye import Receptionist
from examples.streaming import Storyteller
from phoneactors import cli
from phoneactors.cli.simulate import _scripted_lines, parse_simulate_args
from phoneactors.conversation import Conversation, Interruption, Parrot
from phoneactors.simulate import Line, parse_line, simulate
from phoneactors.testing import FakeSpeech

TIMED = re.compile(r" *(\d+\.\d\d)  (.*)")


def transcript(out: io.StringIO) -> list[str]:
    """The printed lines without their times."""
    lines = []
    for line in out.getvalue().splitlines():
        match = TIMED.fullmatch(line)
        assert match, line
        lines.append(match[2])
    return lines


def times(out: io.StringIO) -> list[float]:
    return [float(m[1]) for m in map(TIMED.fullmatch, out.getvalue().splitlines()) if m]


def test_parse_line() -> None:
    assert parse_line("  hello there \n") == Line("hello there")
    assert parse_line("!stop talking") == Line("stop talking", barge_in=True)
    assert parse_line("! stop") == Line("stop", barge_in=True)
    assert parse_line("~uh-huh") == Line("uh-huh", aside=True)
    assert parse_line("~ cough") == Line("cough", aside=True)
    assert parse_line("[2]") == Line("2", keys=True)
    assert parse_line(" [ 1 2 # ] ") == Line("12#", keys=True)
    assert parse_line("[two]") == Line("[two]")  # not keys: said as it is
    for skipped in ("", "   \n", "# a comment", "!", "!  ", "~"):
        assert parse_line(skipped) is None


async def test_a_tilde_line_is_a_sound_over_the_bot_that_it_plays_on_through(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    out = io.StringIO()
    result = await simulate(
        Storyteller,
        speech.engines(),
        ["tell me a story", "~uh-huh", "~cough", "thanks"],
        out=out,
        voice=speech.caller_voice,
    )
    lines = transcript(out)
    start = lines.index("(caller over the bot: uh-huh)")
    assert lines[start : start + 3] == [
        "(caller over the bot: uh-huh)",
        "caller: uh-huh",
        "(that was backchannel ('uh-huh'): no interruption)",
    ]
    assert lines[start + 3].startswith("(the bot played on after 0.")
    cough = lines.index("(caller makes a sound over the bot: cough)")
    assert lines[cough + 2] == "(that was no words: no interruption)"
    assert lines[cough + 3].startswith("(the bot played on after 0.")
    assert not any(line.startswith("(interrupted") for line in lines)
    assert result.call.stats.false_interruptions == 2
    assert result.call.stats.barge_ins == 0
    assert len(result.latencies) == 2  # "tell me a story" and "thanks": the asides got no turn


async def test_a_conversation_in_turns(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    out = io.StringIO()
    result = await simulate(
        Parrot,
        speech.engines(),
        ["hello there", "", "# ignored", "good night"],
        out=out,
        voice=speech.caller_voice,
    )
    assert transcript(out) == [
        "bot: Hi!",
        "bot: Say something and I will repeat it.",
        "(caller speaking: hello there)",
        "caller: hello there",
        'bot: You said: "hello there"',
        result_latency(result.latencies[0]),
        "(caller speaking: good night)",
        "caller: good night",
        'bot: You said: "good night"',
        result_latency(result.latencies[1]),
        "(call ended: caller hung up)",
    ]
    assert result.call.reason == "caller hung up"
    assert len(result.latencies) == 2
    # Latency = end-of-speech silence (300 ms for words that read complete) + the first
    # sentence's synthesis (20 ms): the fake STT (100 ms) started at the short pause (120 ms).
    for latency in result.latencies:
        assert 0.3 <= latency <= 0.35
    assert times(out) == sorted(times(out))


def result_latency(latency: float) -> str:
    return f"(latency {latency:.2f} s: caller's last frame -> bot's first audio)"


async def test_a_bang_line_talks_over_the_bot(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    out = io.StringIO()
    result = await simulate(
        Storyteller,
        speech.engines(),
        ["tell me a story", "!stop please"],
        out=out,
        voice=speech.caller_voice,
    )
    lines = transcript(out)
    spoken = lines.index("(caller speaking over the bot: stop please)")
    # One second into the story the caller talks over it; the bot stops at once, and once the
    # words are heard it is told what was heard, then answers what the caller said (this bot
    # answers everything with the story).
    # (The second sentence is synthesized while the first plays, so it is printed before.)
    assert lines[spoken - 3 : spoken + 4] == [
        "bot: Once upon a time, a small robot answered the phone.",
        result_latency(result.latencies[0]),
        "bot: It listened carefully to every caller.",
        "(caller speaking over the bot: stop please)",
        "caller: stop please",
        "(interrupted; heard: Once upon a)",
        "bot: Once upon a time, a small robot answered the phone.",
    ]
    assert lines[-1] == "(call ended: caller hung up)"
    assert result.call.stats.barge_ins == 1


async def test_barge_in_waits_for_the_answer_to_start(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    """A ``!`` line right after a plain one waits until the bot has been answering for a
    second, so that there is something to interrupt."""
    out = io.StringIO()
    await simulate(
        Storyteller,
        speech.engines(),
        ["tell me a story", "!wait"],
        out=out,
        voice=speech.caller_voice,
    )
    stamped = list(zip(transcript(out), times(out), strict=True))
    latency = next(t for line, t in stamped if line.startswith("(latency"))
    barge = next(t for line, t in stamped if line == "(caller speaking over the bot: wait)")
    assert barge - latency >= 0.85  # the latency line comes 100 ms into the answer


async def test_the_bot_hanging_up_ends_the_simulation(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    out = io.StringIO()
    result = await simulate(
        Receptionist,
        speech.engines(),
        ["bye", "are you still there?"],
        out=out,
        voice=speech.caller_voice,
    )
    lines = transcript(out)
    assert "bot: Goodbye, and thank you for calling." in lines
    assert "(caller speaking: are you still there?)" not in lines
    assert lines[-1] == "(call ended: conversation hung up)"
    assert result.call.reason == "conversation hung up"


class Silent(Conversation):
    """No greeting, and nothing to say to noise."""

    interruptions: list[Interruption]

    async def reply(self, text: str) -> str | None:
        return None if text == "hmm" else text.upper()


async def test_unanswered_turns_do_not_stall(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    out = io.StringIO()
    with trio.fail_after(30):
        result = await simulate(
            Silent, speech.engines(), ["hmm", "hello"], out=out, voice=speech.caller_voice
        )
    assert transcript(out)[:3] == [
        "(caller speaking: hmm)",
        "caller: hmm",
        "(caller speaking: hello)",
    ]
    assert "bot: HELLO" in transcript(out)
    assert len(result.latencies) == 1


async def test_nothing_recognised(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    async def noise(text: str) -> np.ndarray:
        return speech.caller_voice and np.full(4000, 3000, dtype=np.int16)  # not queued for STT

    class Noise:
        name = "noise"

        async def load(self) -> None:
            pass

        async def synthesize(self, text: str) -> np.ndarray:
            return await noise(text)

    out = io.StringIO()
    with trio.fail_after(30):
        await simulate(Silent, speech.engines(), ["psst"], out=out, voice=Noise())
    assert "caller: (nothing recognised)" in transcript(out)


async def test_lines_may_come_from_an_async_iterator(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    async def typed() -> AsyncIterator[str]:
        yield "one"
        await trio.sleep(5)  # the user takes a while to type the next line
        yield "two"

    out = io.StringIO()
    result = await simulate(Parrot, speech.engines(), typed(), out=out, voice=speech.caller_voice)
    assert 'bot: You said: "two"' in transcript(out)
    assert result.duration > 5


async def test_record_writes_a_time_aligned_stereo_wav(
    autojump_clock: MockClock, speech: FakeSpeech, tmp_path: Path
) -> None:
    out = io.StringIO()
    path = tmp_path / "call.wav"
    result = await simulate(
        Parrot, speech.engines(), ["hello"], out=out, voice=speech.caller_voice, record=path
    )
    assert transcript(out)[-1].startswith(f"(recorded {result.duration - 0.0:.0f}"[:12])
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    left, right = frames[0::2], frames[1::2]
    assert abs(len(left) / 8000 - result.duration) < 0.2

    def loud(channel: np.ndarray) -> np.ndarray:
        """Start and end (seconds) of each stretch of sound."""
        energy = np.abs(channel.reshape(-1, 80).astype(np.int32)).max(axis=1) > 1000
        edges = np.flatnonzero(np.diff(energy.astype(np.int8))) + 1
        return edges / 100

    caller, bot = loud(left[: len(left) // 80 * 80]), loud(right[: len(right) // 80 * 80])
    # The bot speaks (greeting), the caller speaks, the bot answers: no overlap, right order.
    assert len(caller) == 2
    assert len(bot) == 4
    assert bot[1] < caller[0] < caller[1] < bot[2]
    # The answer starts one latency after the caller's speech ended (to 20 ms).
    assert bot[2] - caller[1] == pytest.approx(result.latencies[0], abs=0.03)
    # The fake voices are tones: 300 Hz for the bot, 400 Hz and up for the caller.
    assert dominant(right[round(bot[2] * 8000) :][:4000]) == pytest.approx(300, abs=5)
    assert dominant(left[round(caller[0] * 8000) :][:2000]) >= 395


def dominant(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return float(np.argmax(spectrum) * 8000 / len(audio))


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PHONEACTORS_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.usefixtures("clean_environment")
def test_help_names_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "phoneactors simulate [--say TEXT]" in out
    assert "phoneactors call TO --from FROM" in out
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert "--say TEXT" in out
    assert "--record WAV" in out
    assert "PHONEACTORS_CONVERSATION" in out
    assert "--port" not in out  # nothing to serve


@pytest.mark.usefixtures("clean_environment")
def test_serve_is_the_default_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--conversation", "nowhere_x:Bot"], ["serve", "--conversation", "nowhere_x:Bot"]):
        assert cli.main(argv) == 2
        assert "there is no module named 'nowhere_x'" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_environment")
def test_simulate_options_and_their_variables(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_simulate_args([], {})
    assert args.log_level == "WARNING"  # the transcript is the output
    assert args.conversation == "phoneactors.conversation:Parrot"
    assert (args.say, args.script, args.record) == (None, None, None)
    environ = {"PHONEACTORS_CONVERSATION": "mybot:Bot", "PHONEACTORS_END_SILENCE_MS": "300"}
    args = parse_simulate_args(["--say", "a", "--say", "!b"], environ)
    assert (args.conversation, args.end_silence_ms, args.say) == ("mybot:Bot", 300, ["a", "!b"])
    with pytest.raises(SystemExit) as exit_:
        parse_simulate_args(["--port", "80"], {})
    assert exit_.value.code == 2
    assert "unrecognized arguments: --port" in capsys.readouterr().err


def test_say_comes_before_the_script(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text("# the caller\nhello\n!stop\n")
    args = parse_simulate_args(["--say", "first", "--script", str(script)], {})
    assert _scripted_lines(args) == ["first", "# the caller", "hello", "!stop"]
    assert _scripted_lines(parse_simulate_args([], {})) is None  # stdin


@pytest.mark.usefixtures("clean_environment")
def test_simulate_configuration_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.txt"
    assert cli.main(["simulate", "--script", str(missing)]) == 2
    assert f"--script {str(missing)!r}: cannot read it" in capsys.readouterr().err
    record = tmp_path / "no" / "such" / "call.wav"
    assert cli.main(["simulate", "--say", "hi", "--record", str(record)]) == 2
    assert "its folder does not exist" in capsys.readouterr().err
    assert cli.main(["simulate", "--say", "hi", "--record", str(tmp_path)]) == 2
    assert "that is a folder" in capsys.readouterr().err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        unwritable = locked / "call.wav"
    else:  # root may write anywhere, but not into sysfs
        unwritable = Path("/sys/kernel/phoneactors-test.wav")
    assert cli.main(["simulate", "--say", "hi", "--record", str(unwritable)]) == 2
    assert "cannot write it (Permission denied)" in capsys.readouterr().err
    assert cli.main(["simulate", "--conversation", "nowhere_x:Bot"]) == 2
    assert "there is no module named 'nowhere_x'" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_environment")
def test_simulate_reads_stdin_then_hangs_up(
    fake_simulate: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command with fast fake engines, in real time (about two seconds)."""
    fake_simulate("good night\n")
    assert cli.main(["simulate", "--end-silence-ms", "200"]) == 0
    out = capsys.readouterr().out
    assert "Ctrl-D hangs up" in out
    assert 'bot: You said: "good night"' in out
    assert out.rstrip().endswith("(call ended: caller hung up)")


# --------------------------------------------------------------------------------------------
# The command line, with the real default engines


@pytest.mark.e2e
def test_cli_simulate_with_the_real_engines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    status = cli.main(["simulate", "--say", "hello there", "--record", str(path)])
    out = capsys.readouterr().out
    assert status == 0, out
    lines = [m[2] for m in map(TIMED.fullmatch, out.splitlines()) if m]
    assert lines[:2] == ["bot: Hi!", "bot: Say something and I will repeat it."]
    heard = next(line for line in lines if line.startswith("caller: "))
    assert "hello there" in heard.lower()
    answer = next(line for line in lines if line.startswith("bot: You said"))
    assert "hello there" in answer.lower()
    assert any(line.startswith("(latency ") for line in lines)
    assert "(call ended: caller hung up)" in lines
    assert path.stat().st_size > 8000 * 4


async def test_a_simulated_conversation_has_its_history_and_can_speak_on_its_own(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    class Noting(Conversation):
        async def reply(self, text: str) -> str:
            self.say("One more thing.")
            return f"I have heard {len(self.history)} turns."

    out = io.StringIO()
    await simulate(Noting, speech.engines(), ["hello there"], out=out, voice=speech.caller_voice)
    lines = transcript(out)
    assert "bot: I have heard 1 turns." in lines
    assert lines.index("bot: I have heard 1 turns.") < lines.index("bot: One more thing.")


async def test_a_bracket_line_presses_keys(autojump_clock: MockClock, speech: FakeSpeech) -> None:
    class Menu(Conversation):
        greeting = "Press one for sales, two for support."

        async def reply(self, text: str) -> str:
            return "Please use the keys."

        async def on_dtmf(self, digit: str) -> str:
            return {"1": "Sales.", "2": "Support."}.get(digit, "Not an option.")

    out = io.StringIO()
    await simulate(Menu, speech.engines(), ["[2]"], out=out, voice=speech.caller_voice)
    lines = transcript(out)
    assert "(caller presses 2)" in lines
    assert lines.index("(caller presses 2)") < lines.index("bot: Support.")
