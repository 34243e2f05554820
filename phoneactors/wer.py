"""Word error rate for phone transcripts: how close a transcript is to what was said.

Pure and synchronous. Speech-to-text writes spoken numbers as digits ("25", "3:30", "555-1234",
"10 a.m.") and common titles short ("Dr."); :func:`normalise` spells both out the way they are
spoken, so a transcript is not penalised for formatting. Used by the tests, by the benchmarks and
by anyone testing a bot on real speech::

    from phoneactors.testing import word_error_rate
    assert word_error_rate("I need a table for four", transcript) <= 0.2
"""

from __future__ import annotations

import re

__all__ = ["normalise", "number_words", "ordinal_words", "word_error_rate"]


# fmt: off
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on
_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ABBREVIATIONS = {"dr": "doctor", "mr": "mister", "mrs": "missus", "ok": "okay"}


def number_words(n: int) -> str:
    """English words for a non-negative integer below a million ("4512" -> "four thousand ...")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")
    return " ".join(_ONES[int(digit)] for digit in str(n))


def ordinal_words(n: int) -> str:
    """English ordinal words for a non-negative integer (12 -> "twelfth", 21 -> "twenty first")."""
    *head, last = number_words(n).split()
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _time_words(match: re.Match[str]) -> str:
    hour, minutes = int(match[1]), match[2]
    if minutes == "00":
        return f"{number_words(hour)} o'clock"
    return f"{number_words(hour)} {'oh ' if minutes[0] == '0' else ''}{number_words(int(minutes))}"


def normalise(text: str) -> list[str]:
    """Lower-case words with numbers spelled out the way they are spoken, punctuation dropped.

    Handles what Whisper writes for spoken numbers: "25", "3.30" / "3:30", "10 a.m.", "3rd",
    "$45", "1,250", and phone numbers like "555-1234" (read digit by digit).
    """
    t = text.lower()
    t = re.sub(r"\b([ap])\.?\s?m\b\.?", r"\1m", t)
    t = re.sub(r"\$(\d+)", r"\1 dollars", t)
    t = re.sub(r"\b(\d{3})-(\d{4})\b", lambda m: " ".join(_ONES[int(d)] for d in m[1] + m[2]), t)
    t = re.sub(r"\b(\d{1,2})[:.](\d{2})\b", _time_words, t)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m[1])), t)
    t = re.sub(r"\b\d{1,3}(,\d{3})+\b", lambda m: m[0].replace(",", ""), t)
    t = re.sub(r"\d+", lambda m: f" {number_words(int(m[0]))} ", t)
    t = re.sub(r"[^a-z' ]+", " ", t)
    words = (word.strip("'") for word in t.split())
    return [_ABBREVIATIONS.get(word, word) for word in words if word]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference length, after :func:`normalise`."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1] / max(len(ref), 1)
