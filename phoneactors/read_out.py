"""The end-of-turn rules for what a caller reads out: a number not finished ("555-12", "My PIN
is 12 34"), a code of letters and digits cut off ("The tracking number is 1Z 9"), a house number
with its street to come, or an address spelled out up to a separator ("john dot").

Each rule reads a turn as :func:`phoneactors.endpointing.judge_turn` worked it out and returns
why it is incomplete, or None; :mod:`phoneactors.endpointing` runs them with its other rules.
The grouping of numbers read out is :mod:`phoneactors.numbers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from .numbers import (
    clock_time,
    dotted_digits,
    local_phone_number,
    number_groups,
    number_run,
    time_or_year,
)
from .vocabulary import (
    ADDRESS_CONTEXT,
    CODE_PART,
    DETERMINERS,
    LAST_FOUR,
    LONG_IDENTIFIERS,
    SEPARATORS,
)

if TYPE_CHECKING:
    from .endpointing import _Turn

__all__ = ["ends_in_separator", "unfinished_code", "unfinished_number"]

# fmt: off
_NUMBER_CONTEXT: Final = frozenset({
    "number", "numbers", "phone", "cell", "mobile", "code", "account", "card", "zip",
    "postcode", "pin", "id", "reference", "confirmation", "order", "extension", "ext", "digits",
    "ending", "tracking", "policy", "member", "routing", "call", "reach", "dial", "text",
})
_WEAK_NUMBER_CONTEXT: Final = frozenset({"is", "are", "was", "it's", "that's"})
"""Read-out context too, but not before a year ("It was 1998.")."""
_CONTEXT_WINDOW: Final = 4
_TIME_PREPOSITIONS: Final = frozenset({
    "at", "by", "around", "until", "till", "before", "after", "about",
})
"""Words before a clock time: "at 7 30" (Whisper's digits for "seven thirty") is a time, not
digits being read out; after "call", "number" and the like it stays digits."""
_FULL_NUMBER_DIGITS: Final = 10
# fmt: on


_CODE_PIECES_CHARS: Final = 5
"""A code read out in pieces ("1Z 9", "X 4") is this short when it is cut off."""


def unfinished_number(turn: _Turn) -> str | None:
    """Digits being read out and not finished: "555-12", "five five five", "My PIN is 12 34"."""
    run = number_run(turn.tokens)
    if not run:
        return None
    before = turn.tokens[-len(run) - _CONTEXT_WINDOW : -len(run)]
    strong_context = not _NUMBER_CONTEXT.isdisjoint(before)
    if strong_context:  # "The zip code is 9.4": Whisper's dots between digits read out
        run = [part for word in run for part in dotted_digits(word)]
    groups = number_groups(run)
    reason = f"a number being read out ({' '.join(run)!r})"
    if sum(group.digits for group in groups) >= _FULL_NUMBER_DIGITS:
        return None
    if len(groups) == 1:
        (group,) = groups
        address = len(before) >= 2 and before[-1] in ("is", "at") and before[-2] in ADDRESS_CONTEXT
        if address and not group.quantity and group.digits <= 5:
            return reason  # a house number: the street is to come
        identifier = _names_a_long_number(before)
        if identifier and not group.quantity and group.digits < 3:
            return reason  # "My account number is 47": more digits are to come
        if group.quantity or turn.amount or not 3 <= group.digits <= 9:
            return None
        if group.digits == 4 and not LAST_FOUR.isdisjoint(before):
            return None  # "the card ending in 4242": the last four digits, all of them
        if strong_context or (not group.year and not _WEAK_NUMBER_CONTEXT.isdisjoint(before)):
            return reason
        return None
    if time_or_year(groups) and not strong_context:
        return None
    if before and before[-1] in _TIME_PREPOSITIONS and clock_time(groups) and not strong_context:
        return None  # "We'll be there at 7 30.": half past seven
    if local_phone_number(groups):
        return None
    return reason


def unfinished_code(turn: _Turn) -> str | None:
    """A code of letters and digits being read out: "The tracking number is 1Z 9", "My
    booking reference is AB12", "The code is X 4"; not "It's room 4B" (no number context right
    before it)."""
    start = len(turn.tokens)
    while start > 0 and _is_code_word(turn.tokens[start - 1]):
        start -= 1
    run = turn.tokens[start:]
    letters = any(not word.isdigit() for word in run)
    if not letters or not any(char.isdigit() for word in run for char in word):
        return None
    if len(run) < 2 or sum(len(word) for word in run) > _CODE_PIECES_CHARS:
        return None  # one code said whole ("14F", "X7K9P2") is complete
    before = turn.tokens[max(0, start - _CONTEXT_WINDOW) : start]
    if _NUMBER_CONTEXT.isdisjoint(before):
        return None
    return f"a code being read out ({' '.join(run)!r})"


def _names_a_long_number(before: Sequence[str]) -> bool:
    """ "account number is", "card number": a number that is never one or two digits."""
    tail = list(before[-3:])
    if tail[-1:] == ["is"]:
        tail = tail[:-1]
    return len(tail) >= 2 and tail[-1] == "number" and tail[-2] in LONG_IDENTIFIERS


def _is_code_word(word: str) -> bool:
    """Digits, letters and digits ("c99"), or a letter on its own that is not a word ("x")."""
    if word.isdigit() or CODE_PART.fullmatch(word):
        return True
    return len(word) == 1 and word.isalpha() and word not in ("a", "i")


def ends_in_separator(turn: _Turn) -> str | None:
    """An address or code being spelled out stops at "dot", "underscore", "dash": more follows."""
    if turn.last in SEPARATORS and len(turn.tokens) > 1 and turn.previous not in DETERMINERS:
        return f"ends in {turn.last!r}: the rest is being spelled out"
    return None
