"""Pieces of decoding Whisper in a short window, apart from the model: how sure the decoder was
of a transcript's last word, the prompt, the encoder outputs kept for a second reading, and
Whisper's own test for a transcript that loops."""

from __future__ import annotations

import collections
import hashlib
import math
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import PCM

__all__ = ["Encodings", "Prompt", "compression_ratio", "word_logprob", "words_or_nothing"]


def word_logprob(
    generated: list[int],
    logits: list[Any],
    decode: Callable[[list[int]], str],
    *,
    through_the_end: bool = False,
) -> float | None:
    """The log-probability of the least likely token of the last word of ``generated`` (and,
    ``through_the_end``, of the punctuation after it), from the decoder's logits at each step;
    ``None`` if it has no word."""
    pieces = [str(decode([token])) for token in generated]
    wordy = [i for i, piece in enumerate(pieces) if any(char.isalnum() for char in piece)]
    if not wordy or len(logits) < len(generated):
        return None
    last = start = wordy[-1]
    while start > 0 and not pieces[start].startswith(" ") and start - 1 in wordy:
        start -= 1
    if through_the_end:
        last = len(generated) - 1
    worst = 0.0
    for step in range(start, last + 1):
        values = np.asarray(logits[step], dtype=np.float32)
        top = float(values.max())
        normaliser = top + math.log(float(np.exp(values - top).sum()))
        worst = min(worst, float(values[generated[step]]) - normaliser)
    return worst


def words_or_nothing(text: str) -> str:
    """``text``, or '' when it has no letters or digits (a lone "." is no transcript)."""
    return text if any(char.isalnum() for char in text) else ""


@dataclass(frozen=True, slots=True)
class Prompt:
    """What decoding in a short window needs from the tokenizer, computed once at load."""

    tokens: tuple[int, ...]
    suppress: tuple[int, ...]
    first_timestamp: int
    decode: Callable[[list[int]], str]
    encode: Callable[[str], list[int]]
    previous_text: int
    """The token that opens a prompt of earlier text (Whisper's ``<|startofprev|>``)."""

    def hinted(self, hint: str) -> tuple[int, ...]:
        """The decoder prompt with ``hint`` as the text said before: what to expect."""
        return (self.previous_text, *self.encode(" " + hint.strip()), *self.tokens)


class Encodings:
    """The encoder's outputs for the last few audios, by a hash of the audio; shared by the
    engine's worker threads."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._held: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(audio: PCM) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(audio).tobytes(), digest_size=16).digest()

    def get(self, key: bytes | None) -> Any:
        """The encoding kept under ``key`` (``None``: none, or no key)."""
        if key is None:
            return None
        with self._lock:
            encoded = self._held.get(key)
            if encoded is not None:
                self._held.move_to_end(key)
            return encoded

    def put(self, key: bytes | None, encoded: Any) -> None:
        if key is None or not self._kept:
            return
        with self._lock:
            self._held[key] = encoded
            self._held.move_to_end(key)
            while len(self._held) > self._kept:
                self._held.popitem(last=False)


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0
