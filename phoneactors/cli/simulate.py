"""``phoneactors simulate``: one call in the terminal, through the real runtime and engines."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

import trio

from ..conversation import open_conversations
from ..engines import Engines
from ..errors import ConfigurationError
from .building import call_settings_from_args, engines_from_args, load_conversation
from .common import (
    EXIT_USAGE,
    PROG,
    configure_logging,
    report_configuration_error,
    run_trio,
    use_working_directory,
)
from .options import (
    OPTIONS,
    SERVER_ONLY,
    SIMULATE_DEFAULTS,
    Option,
    add_options,
    apply_environment,
)

__all__ = ["build_simulate_parser", "parse_simulate_args", "simulate_command"]


def simulate_options() -> tuple[Option, ...]:
    return tuple(option for option in OPTIONS if option.flag not in SERVER_ONLY)


def build_simulate_parser() -> argparse.ArgumentParser:
    """The parser of ``phoneactors simulate``: its own options, then every ``serve`` option
    that is not about serving (the conversation, the engines, turn-taking, logging)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} simulate",
        description=(
            "Talk to your bot in the terminal: one whole call runs in this process, through "
            "the real call runtime and speech engines, against a fake Twilio, in real time. "
            "No phone line or Twilio account is needed. Each line (typed, --say, or from "
            "--script) is synthesized as the caller's speech and sent as 20 ms μ-law frames; "
            "a line starting with ! is spoken over the bot (barge-in); a line starting with ~ "
            "is a backchannel (~uh-huh) or a sound (~cough, ~breath, ~knock, ~click) over the "
            "bot, which pauses and plays on; a line like [2] or [12#] presses keys; other lines "
            "wait for the bot to finish. Both sides' transcript is printed as it happens, with "
            "the latency of each turn."
        ),
        epilog=(
            "Without --say or --script, lines come from standard input until end of file "
            "(Ctrl-D); then the caller hangs up. Options also read the environment variable "
            "shown with them, as for serve."
        ),
    )
    parser.add_argument(
        "--say",
        action="append",
        metavar="TEXT",
        help="a line for the caller to say; repeat it for more (said before --script's lines)",
    )
    parser.add_argument(
        "--script",
        metavar="FILE",
        help=(
            "a file of lines for the caller, one a line ('#' starts a comment, '!' barges in, "
            "'~' is a backchannel or a sound over the bot, '[12#]' presses keys)"
        ),
    )
    parser.add_argument(
        "--record",
        metavar="WAV",
        help="write the call's audio to this stereo 8 kHz WAV file: caller left, bot right",
    )
    add_options(parser, simulate_options(), SIMULATE_DEFAULTS)
    return parser


def parse_simulate_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Parse ``phoneactors simulate``'s arguments (after the word ``simulate``), filling options
    left out from their variables as :func:`parse_args` does."""
    parser = build_simulate_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    apply_environment(parser, args, simulate_options(), environ, SIMULATE_DEFAULTS)
    return args


def _scripted_lines(args: argparse.Namespace) -> list[str] | None:
    """The lines from --say and --script, or ``None`` when neither is given (read stdin)."""
    if args.say is None and args.script is None:
        return None
    lines = list(args.say or [])
    if args.script is not None:
        try:
            with open(args.script, encoding="utf-8") as script:
                lines.extend(script.read().splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"--script {args.script!r}: cannot read it: {exc}") from None
    return lines


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines typed on standard input, until end of file."""
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        yield line


def _check_writable(path: str) -> None:
    """Fail now, not after the whole call, when the recording could not be written."""
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise ConfigurationError(f"--record {path!r}: its folder does not exist")
    if os.path.isdir(path):
        raise ConfigurationError(f"--record {path!r}: that is a folder; name a .wav file in it")
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"--record {path!r}: cannot write it ({exc.strerror})") from None
    if not existed:
        os.unlink(path)


def simulate_command(argv: Sequence[str]) -> int:
    """``phoneactors simulate``: exit 0 once the call is over, 2 for a bad command line or
    configuration, 1 when the engines or the call fail, 130 on Ctrl-C."""
    args = parse_simulate_args(argv)
    configure_logging(args.log_level, args.log_format)
    use_working_directory()
    try:
        conversation = load_conversation(args.conversation)
        settings = call_settings_from_args(args)
        lines = _scripted_lines(args)
        if args.record is not None:
            _check_writable(args.record)
        engines = engines_from_args(args)
    except ConfigurationError as exc:
        report_configuration_error(exc)
        return EXIT_USAGE

    from ..simulate import simulate

    async def run() -> None:
        try:
            await simulate_with(engines)
        finally:
            await engines.aclose()

    async def simulate_with(engines: Engines) -> None:
        names = f"vad={engines.vad.name}, stt={engines.stt.name}, tts={engines.tts.name}"
        name = getattr(conversation, "__name__", args.conversation)
        print(f"{PROG} simulate: {name} ({names})", flush=True)
        started = trio.current_time()
        await engines.load()
        how = (
            "type what the caller says and press Enter ('!' first: talk over the bot); "
            "Ctrl-D hangs up"
            if lines is None
            else "calling"
        )
        print(f"speech engines ready in {trio.current_time() - started:.1f} s; {how}", flush=True)
        async with open_conversations(conversation) as factory:
            await simulate(
                factory,
                engines,
                _stdin_lines() if lines is None else lines,
                out=sys.stdout,
                record=args.record,
                settings=settings,
            )

    return run_trio(run, "the simulation failed")
