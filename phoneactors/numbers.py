"""Numbers read out in a transcript, as a listener groups them: "555 12", "five five five",
"twenty five", "double five", "two hundred", "7:30". Pure and synchronous; the end-of-turn
rule for numbers still being read out (:mod:`phoneactors.read_out`) reads these groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "Group",
    "clock_time",
    "dotted_digits",
    "local_phone_number",
    "number_groups",
    "number_run",
    "time_or_year",
]

# fmt: off
_DIGIT_WORDS: Final = MappingProxyType({
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
})
_MAGNITUDES: Final = frozenset({"hundred", "thousand", "million", "billion"})
_REPEATS: Final = MappingProxyType({"double": 2, "triple": 3})
_DIGIT_TOKEN: Final = re.compile(r"\d+(?:[:.]\d+)*")
_DOTTED_DIGITS: Final = re.compile(r"\d(?:\.\d)+")
_MAX_VALUE_DIGITS: Final = 18
"""Longer runs of digits are read as digits only (Python refuses to parse thousands of them)."""
# fmt: on


@dataclass(frozen=True, slots=True)
class Group:
    """One group of a number: "555", "twenty five", "double five", "two hundred", "7:30"."""

    digits: int
    value: int | None = None
    """The group's value, when it is a plain whole number (not "7:30", not "two hundred")."""
    quantity: bool = False
    """A time, a decimal or a magnitude: read as an amount, not as digits."""
    spoken: bool = True
    """Said in words ("five") rather than written in digits ("5")."""

    @property
    def year(self) -> bool:
        return self.value is not None and 1900 <= self.value <= 2099


def dotted_digits(word: str) -> list[str]:
    """ "9.4" -> ["9", "4"]: single digits with dots between, as Whisper writes digits said
    one at a time; any other word as it is."""
    return word.split(".") if _DOTTED_DIGITS.fullmatch(word) else [word]


def number_run(tokens: Sequence[str]) -> Sequence[str]:
    """The numbers at the end of the turn ("my number is 555 12" -> ``["555", "12"]``).

    An "oh" counts only after another number ("five oh one"), not at the run's start ("Oh.").
    """
    start = len(tokens)
    while start > 0 and _is_number_word(tokens[start - 1]):
        start -= 1
    while start < len(tokens) and tokens[start] == "oh":
        start += 1
    run = tokens[start:]
    return run if any(word not in _REPEATS for word in run) else []


def _is_number_word(word: str) -> bool:
    return (
        word in _DIGIT_WORDS
        or word in _MAGNITUDES
        or word in _REPEATS
        or _DIGIT_TOKEN.fullmatch(word) is not None
    )


def number_groups(run: Sequence[str]) -> list[Group]:
    """Split a run of numbers into the groups a listener hears.

    Digit tokens are groups as written ("555", "12", "7:30"); spoken single digits and teens
    are a group each ("five five five"); a tens word takes a following unit ("twenty five");
    "double five" is one group of two digits; "hundred" or "thousand" makes the group before
    it, and the words after it, one quantity ("two hundred fifty").
    """
    groups: list[Group] = []
    repeat = 0
    for word in run:
        last = groups[-1] if groups else None
        if word in _REPEATS:
            repeat = _REPEATS[word]
        elif word in _MAGNITUDES:
            if last is not None and last.value is not None:
                groups[-1] = Group(last.digits + 2, quantity=True)
            else:
                groups.append(Group(3, quantity=True))
        elif word in _DIGIT_WORDS:
            value = _DIGIT_WORDS[word]
            if repeat:
                groups.append(Group(repeat))
                repeat = 0
            elif last is not None and last.spoken and last.quantity:
                pass  # "two hundred fifty": still the same amount
            elif (
                last is not None and last.value is not None and _takes_unit(last) and 0 < value < 10
            ):
                groups[-1] = Group(2, last.value + value)
            else:
                groups.append(Group(1 if value < 10 else 2, value))
        else:
            digits = sum(char.isdigit() for char in word)
            plain = word.isdigit() and digits <= _MAX_VALUE_DIGITS
            groups.append(Group(digits, int(word) if plain else None, not plain, spoken=False))
    if repeat:
        groups.append(Group(repeat))  # "five double": the doubled digit is still to come
    return groups


def _takes_unit(group: Group) -> bool:
    """A spoken tens word still open for its unit ("twenty" before "five", not "oh")."""
    return group.spoken and group.value in range(20, 100, 10)


def time_or_year(groups: Sequence[Group]) -> bool:
    """Two spoken groups that read as a clock time ("seven thirty") or a year ("nineteen
    eighty", "twenty twenty four")."""
    if len(groups) != 2 or not all(group.spoken for group in groups):
        return False
    hour, rest = groups[0].value, groups[1].value
    if hour is None or rest is None or groups[0].digits > 2 or groups[1].digits != 2:
        return False
    clock = 1 <= hour <= 12 and 10 <= rest <= 59
    year = 10 <= hour <= 20 and groups[0].digits == 2 and 10 <= rest <= 99
    return clock or year


def clock_time(groups: Sequence[Group]) -> bool:
    """Two groups that read as hours and minutes, in words or digits ("7 30", "19 05")."""
    if len(groups) != 2:
        return False
    hour, minutes = groups[0].value, groups[1].value
    return (
        hour is not None
        and minutes is not None
        and groups[0].digits <= 2
        and groups[1].digits == 2
        and 0 <= hour <= 23
        and 0 <= minutes <= 59
    )


def local_phone_number(groups: Sequence[Group]) -> bool:
    """Whisper's "555-1234": a three-digit group then a four-digit one, seven digits in all."""
    return [group.digits for group in groups] == [3, 4] and not any(
        group.spoken or group.quantity for group in groups
    )
