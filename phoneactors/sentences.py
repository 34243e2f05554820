"""Split streamed reply text into sentences, so speech can start on the first one.

Pure and synchronous. Text arrives in chunks of any size (an LLM's tokens); :meth:`feed` returns
each sentence as soon as it is certainly complete, :meth:`flush` whatever is left at the end.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["SentenceSplitter", "split_sentences"]

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and then whitespace,
# or at a newline. The whitespace must have arrived: "3." may still become "3.5".
_END: Final = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*\\s+|\n+")
_ABBREVIATIONS: Final = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "no",
        "approx",
        "dept",
        "est",
        "inc",
        "ltd",
        "co",
        "mt",
        "ft",
    ]
)
_SOFT_LIMIT: Final = 200
"""Past this many characters without an end, break at the last comma/semicolon/colon or space."""


class SentenceSplitter:
    """Incremental sentence splitter. ``feed`` chunks, then ``flush`` once."""

    def __init__(self, soft_limit: int = _SOFT_LIMIT) -> None:
        self._buffer = ""
        self._soft_limit = soft_limit

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a sentence."""
        return self._buffer

    def feed(self, chunk: str) -> list[str]:
        self._buffer += chunk
        sentences: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()]
            if _ends_with_abbreviation(self._buffer[start : match.start() + 1]):
                continue
            if candidate.strip():
                sentences.append(candidate.strip())
            start = match.end()
        rest = self._buffer[start:]
        while len(rest) > self._soft_limit:
            cut = _soft_break(rest, self._soft_limit)
            sentences.append(rest[:cut].strip())
            rest = rest[cut:].lstrip()
        self._buffer = rest
        return sentences

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []


def _ends_with_abbreviation(text: str) -> bool:
    words = text.rstrip(".").split()
    if not words or not text.endswith("."):
        return False
    last = words[-1].lower()
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and last.isupper())


def _soft_break(text: str, limit: int) -> int:
    for separators in (",;:", " "):
        cut = max(text.rfind(sep, 0, limit) for sep in separators)
        if cut > limit // 4:
            return cut + 1
    return limit


def split_sentences(text: str) -> list[str]:
    """Split a whole text at once."""
    splitter = SentenceSplitter()
    return splitter.feed(text) + splitter.flush()
