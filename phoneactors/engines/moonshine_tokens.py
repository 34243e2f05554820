"""Moonshine's tokenizer: token ids back to text, from the ``tokenizer.bin`` the model ships.

``tokenizer.bin`` is a flat run of records, one per token id in order: a length byte, then that
many bytes of the token's piece. Ids 0, 1, 2 are ``<unk>``, ``<s>`` (the decoder's start) and
``</s>`` (the end); ids 3 to 258 are SentencePiece's byte fallback, each one raw byte (so a
character the vocabulary lacks arrives as its UTF-8 bytes, one token each); every other piece is
UTF-8 text with ``▁`` (U+2581) for a space. The model scores 32,768 ids, more than there are
pieces: the rest are padding and never text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ..errors import ConfigurationError

__all__ = [
    "EOS_ID",
    "START_ID",
    "VOCABULARY",
    "MoonshineTokenizer",
    "last_word_logprob",
]

UNKNOWN_ID: Final = 0
START_ID: Final = 1
"""``<s>``: the decoder's first input."""
EOS_ID: Final = 2
"""``</s>``: the decoder is done."""
SPECIAL_IDS: Final = frozenset({UNKNOWN_ID, START_ID, EOS_ID})
BYTE_IDS: Final = range(3, 3 + 256)
"""Byte-fallback tokens: id ``3 + b`` is the byte ``b``."""
VOCABULARY: Final = 32000
"""Pieces in Moonshine's vocabulary (ids beyond it are never text)."""
SPACE: Final = "\u2581"
"""SentencePiece's stand-in for a space."""


class MoonshineTokenizer:
    """Turns Moonshine token ids into text. Immutable; safe to share between threads."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        if len(pieces) < BYTE_IDS.stop:
            raise ConfigurationError(
                f"a Moonshine tokenizer has at least {BYTE_IDS.stop} pieces, this one {len(pieces)}"
            )
        self.pieces: tuple[bytes, ...] = tuple(pieces)

    @classmethod
    def from_bytes(cls, data: bytes, origin: str = "tokenizer.bin") -> MoonshineTokenizer:
        """Parse the records of a ``tokenizer.bin``; :class:`ConfigurationError` if they do
        not add up (``origin`` names the file in the message)."""
        pieces: list[bytes] = []
        at = 0
        while at < len(data):
            end = at + 1 + data[at]
            if end > len(data):
                raise ConfigurationError(f"{origin} is cut short inside token {len(pieces)}")
            pieces.append(data[at + 1 : end])
            at = end
        try:
            return cls(pieces)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{origin} is not a Moonshine tokenizer: {exc}") from exc

    @classmethod
    def from_file(cls, path: Path) -> MoonshineTokenizer:
        return cls.from_bytes(path.read_bytes(), str(path))

    def __len__(self) -> int:
        return len(self.pieces)

    def is_text(self, token: int) -> bool:
        """Whether ``token`` stands for text (not a special id, not beyond the pieces)."""
        return 0 <= token < len(self.pieces) and token not in SPECIAL_IDS

    def piece(self, token: int) -> str:
        """One token's text as it stands (``▁`` for a space; '' for a special id; a lone byte
        of a longer character decodes as U+FFFD)."""
        if not self.is_text(token):
            return ""
        return self.pieces[token].decode("utf-8", errors="replace")

    def decode(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``: pieces joined, bytes decoded as UTF-8 (an invalid sequence
        becomes U+FFFD), spaces restored, runs of whitespace made one, ends stripped."""
        data = b"".join(self.pieces[t] for t in map(int, tokens) if self.is_text(t))
        text = data.decode("utf-8", errors="replace").replace(SPACE, " ")
        return " ".join(text.split())


def last_word_logprob(
    tokenizer: MoonshineTokenizer, tokens: Sequence[int], logprobs: Sequence[float]
) -> float | None:
    """The log-probability of the least likely token of the last word of ``tokens`` (each
    token's own in ``logprobs``), or ``None`` when there is no word. A word starts at a piece
    that begins with a space and ends at the last piece holding a letter or digit."""
    pieces = [tokenizer.piece(token) for token in tokens]
    wordy = [i for i, piece in enumerate(pieces) if any(char.isalnum() for char in piece)]
    if not wordy or len(logprobs) < len(tokens):
        return None
    start = last = wordy[-1]
    while start > 0 and not pieces[start].startswith(SPACE) and pieces[start - 1].strip(SPACE):
        start -= 1
    return min(logprobs[start : last + 1])
