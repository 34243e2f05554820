"""The command line: ``python -m phoneactors [options]`` (or ``phoneactors``) serves calls.

Four commands; ``serve`` is the default, so ``phoneactors --port 9000`` serves::

    phoneactors [serve] [options]                  serve Twilio calls (and the softphone, /phone)
    phoneactors simulate [--say TEXT] [options]    one call in the terminal, no phone line
    phoneactors call TO --from FROM [options]      place an outbound call through Twilio's API
    phoneactors calls [CALL_SID]                   list recorded calls, or print one transcript

Every option can also be set through an environment variable, ``PHONEACTORS_`` followed by the
option's name in capitals with ``-`` as ``_`` (``--max-calls`` → ``PHONEACTORS_MAX_CALLS``); a
flag on the command line wins over the variable, and an empty variable counts as unset. The
Twilio auth token is read only from ``TWILIO_AUTH_TOKEN``, so it never shows in process lists.

Once the speech engines are loaded and the socket is bound, exactly one line goes to stdout::

    phoneactors listening on http://127.0.0.1:8080 (webhook POST /, stream /stream)

Ctrl-C or SIGTERM stops taking calls and lets those in progress finish (``--drain-timeout``);
a second signal ends them at once.

Exit status: 0 after a shutdown by signal; 2 for a bad command line or configuration (an
unknown option, a ``--conversation`` that cannot be imported, a value out of range, a model
that is not installed); 1 when serving fails otherwise (the port is taken, an engine crashes).

``simulate`` takes the same conversation, engine and turn-taking options as ``serve`` (and their
variables), and exits 0 once the call is over. ``call`` reads the Twilio credentials from
``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (missing: exit 2), and exits 1 when Twilio
refuses the call or cannot be reached.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .building import load_conversation
from .common import PROG
from .options import OPTIONS, build_parser, parse_args

__all__ = ["OPTIONS", "PROG", "build_parser", "load_conversation", "main", "parse_args"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring).

    ``--help`` and argparse's own errors raise ``SystemExit`` as argparse always does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    match argv[:1]:
        case ["simulate"]:
            from .simulate import simulate_command

            return simulate_command(argv[1:])
        case ["call"]:
            from .call import call_command

            return call_command(argv[1:])
        case ["calls"]:
            from .calls import calls_command

            return calls_command(argv[1:])
        case ["serve"]:
            argv = argv[1:]
    from .serve import serve_command

    return serve_command(argv)
