"""Key-press tones (DTMF), to drive another phone menu from inside a call. Pure numpy.

Each key is the sum of two sine waves, a row and a column frequency (ITU-T Q.23): 100 ms of tone,
then 100 ms of silence, well inside what exchanges and IVRs accept (at least 40 ms of each).
``w`` waits half a second, as dialers write it.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from .audio import PCM, SAMPLE_RATE

__all__ = ["KEYS", "tones"]

_ROWS: Final = (697.0, 770.0, 852.0, 941.0)
_COLUMNS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_LAYOUT: Final = ("123A", "456B", "789C", "*0#D")
KEYS: Final = {
    key: (_ROWS[row], _COLUMNS[column])
    for row, keys in enumerate(_LAYOUT)
    for column, key in enumerate(keys)
}
"""Each key's (row, column) frequencies in Hz."""
WAIT_S: Final = 0.5
"""The pause a ``w`` stands for."""


def tones(digits: str, *, tone_ms: int = 100, gap_ms: int = 100, dbfs: float = -10.0) -> PCM:
    """The tones of ``digits`` (``0`` to ``9``, ``*``, ``#``, ``A`` to ``D``; ``w`` is a half-second
    wait) as 8 kHz int16 audio, each tone ``tone_ms`` long with ``gap_ms`` of silence after it,
    each of its two frequencies at ``dbfs`` (RMS, dB below full scale).

    Raises ``ValueError`` for an empty string or a character that is no key.
    """
    keys = digits.upper().replace("W", "w")
    if not keys:
        raise ValueError("no digits to send")
    unknown = sorted({char for char in digits if char.upper() not in KEYS and char not in "wW"})
    if unknown:
        raise ValueError(
            f"cannot send {', '.join(map(repr, unknown))}: the keys are 0-9, *, #, A-D, and w "
            "(a half-second wait)"
        )
    if tone_ms < 40 or gap_ms < 40:
        raise ValueError("tones and gaps must each last at least 40 ms")
    amplitude = 32768.0 * 10 ** (dbfs / 20) * np.sqrt(2)  # a sine's peak for that RMS
    t = np.arange(round(SAMPLE_RATE * tone_ms / 1000)) / SAMPLE_RATE
    gap = np.zeros(round(SAMPLE_RATE * gap_ms / 1000))
    wait = np.zeros(round(SAMPLE_RATE * WAIT_S))
    parts: list[np.ndarray] = []
    for key in keys:
        if key == "w":
            parts.append(wait)
            continue
        low, high = KEYS[key]
        parts.append(amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))
        parts.append(gap)
    audio: PCM = np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
    return audio
