"""What was said on a call, as the caller experienced it: the history a language model needs.

The call keeps a :class:`History` of :class:`Turn` objects, in order, and a conversation reads it
as ``self.history``. It tells the truth about the bot's side: a reply the caller cut short is
kept as far as it was heard (``interrupted``), a reply that paused over a cough or an "uh-huh"
and played on is one whole turn, and a reply nobody heard (the caller had only paused, and went
on) is not there at all, its caller turn joined with what came next. The caller's side is what
the speech-to-text engine heard, and their key presses (consecutive presses make one turn).
Coughs, backchannels over the bot and silences are not turns.

:meth:`History.as_messages` gives the OpenAI chat format (``user`` / ``assistant``), with an
interrupted reply marked as such.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, overload

__all__ = ["History", "Turn"]

INTERRUPTED_MARK = "[interrupted by the caller]"
NOTHING_HEARD = "[interrupted by the caller before any of it was heard]"


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of a call."""

    speaker: Literal["caller", "bot"]
    text: str
    """What was said (the caller's words as transcribed; the bot's as heard), or the digits
    pressed."""
    interrupted: bool = False
    """A bot reply the caller talked over: ``text`` is what they heard of it (maybe nothing)."""
    keys: bool = False
    """Caller key presses: ``text`` is the digits, in order."""


class History(Sequence[Turn]):
    """The turns of one call, oldest first. Read-only for conversations; the call appends."""

    def __init__(self) -> None:
        self._turns: list[Turn] = []

    @overload
    def __getitem__(self, index: int) -> Turn: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Turn]: ...
    def __getitem__(self, index: int | slice) -> Turn | Sequence[Turn]:
        return self._turns[index]

    def __len__(self) -> int:
        return len(self._turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self._turns)

    def __repr__(self) -> str:
        return f"History({self._turns!r})"

    def as_messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The turns as OpenAI-style chat messages, after an optional ``system`` message: the
        caller is ``user`` (key presses as ``[pressed 1 2]``), the bot ``assistant`` (an
        interrupted reply as what was heard, then ``[interrupted by the caller]``)."""
        messages = [] if system is None else [{"role": "system", "content": system}]
        for turn in self._turns:
            if turn.speaker == "caller":
                content = f"[pressed {' '.join(turn.text)}]" if turn.keys else turn.text
                messages.append({"role": "user", "content": content})
            elif turn.interrupted:
                content = f"{turn.text} {INTERRUPTED_MARK}" if turn.text else NOTHING_HEARD
                messages.append({"role": "assistant", "content": content})
            else:
                messages.append({"role": "assistant", "content": turn.text})
        return messages

    # -- the call's side ----------------------------------------------------------------------

    def caller_said(self, text: str) -> None:
        self._turns.append(Turn("caller", text))

    def caller_went_on(self, text: str) -> None:
        """The caller's words continue their last turn, whose reply they heard nothing or only
        the start of: that reply goes, and the caller's turn becomes ``text`` (both parts)."""
        while (
            self._turns
            and self._turns[-1].speaker == "bot"
            and (not self._turns[-1].text or self._turns[-1].interrupted)
        ):
            self._turns.pop()
        if self._turns and self._turns[-1].speaker == "caller" and not self._turns[-1].keys:
            self._turns.pop()
        self._turns.append(Turn("caller", text))

    def caller_pressed(self, digit: str) -> None:
        last = self._turns[-1] if self._turns else None
        if last is not None and last.speaker == "caller" and last.keys:
            self._turns[-1] = Turn("caller", last.text + digit, keys=True)
        else:
            self._turns.append(Turn("caller", digit, keys=True))

    def bot_said(self, text: str, *, interrupted: bool = False) -> None:
        self._turns.append(Turn("bot", text, interrupted=interrupted))
