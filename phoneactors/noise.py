"""A speech gate that follows the line's noise floor.

Pure and synchronous: no event loop, no clock. It counts samples, so the same frames always give
the same verdicts.

A voice activity detector keeps calling frames speech for a while after speech stops (the WebRTC
VAD's 60-100 ms hangover), and on a hissy line it can call hiss speech outright. A fixed energy
gate cuts that only where the line is quieter than the gate. :class:`NoiseGate` measures each
line instead: the **noise floor** is the lowest energy of the last few seconds, and a voiced
verdict gets through only for a frame clearly above it.

How the floor moves:

* **down at once**: a quieter stretch becomes the floor, so the gate fits a new line from its
  first frame;
* **up slowly**: a quiet stretch holds the floor down for at least ``window_ms`` (and at most
  ``window_ms + block_ms``), so continuous speech never lifts it into the speech (any 60 ms at
  the line's own level renews it), and a line that gets noisier is followed within one window;
* **digital silence counts only when it lasts**: frames below one unit of mean square (all
  zeros, or nearly) are a floor of 0 once they have lasted 100 ms (a silent line, a mute, zeros
  between words: the gate is then ``min_rms``), and are not measured at all before that (a lost
  packet or three filled with zeros would otherwise open the gate to the hiss around them for a
  whole window).

Otherwise the floor is measured on the mean energy of the last three frames (60 ms) that were
not digital silence, not on single frames: the minimum of single frames sits well under a noise's
typical frame (2 dB for white hiss, more for pink), and one odd quiet frame would drag it down
for a whole window. Over a 5 s window of hiss, three frames bring the loudest frame from 3.5 to
2.6 dB above the floor (white) and from 5.2 to 4.6 dB (pink, from 100 Hz): margin won, for two
additions.

The gate is ``floor`` raised by ``margin_db`` and kept between ``min_rms`` and ``max_rms``: below
``min_rms`` nothing is speech even on a silent line, and no line's noise demands more than
``max_rms`` of a caller. All comparisons are of mean squares (int16 units squared), so a frame
costs one dot product and no square root.
"""

from __future__ import annotations

import collections
import math
from typing import Final

import numpy as np

from .audio import FRAME_MS, PCM, SAMPLE_RATE
from .errors import ConfigurationError

__all__ = ["DEFAULT_MARGIN_DB", "DEFAULT_MAX_RMS", "NoiseGate"]

DEFAULT_MARGIN_DB: Final = 6.0
"""How far above the floor a frame must be to count (in dB). The floor is the *quietest* 60 ms,
so a steady hiss's loudest 20 ms frames are above it: in five minutes of μ-law hiss, by up to
2.7 dB (white) and 4.9 dB (pink, from 100 Hz). 6 dB keeps them out, with 1.1 dB to spare for
pink."""
DEFAULT_MAX_RMS: Final = 820.0
"""The gate never rises above this RMS (int16 units; about -32 dBFS), the level of quiet
telephone speech: on a line noisier than about -37 dBFS the gate stops following the noise, so
a caller speaking normally is still heard. The price: hiss louder than about -35 dBFS (pink) or
-34 dBFS (white) has frames above the gate, and only the VAD keeps those out."""

_SILENT_SQUARE: Final = 1.0
"""A frame with a lower mean square (under one int16 step RMS, about -90 dBFS) is digital
silence."""
_SILENT_RUN: Final = SAMPLE_RATE * 100 // 1000
"""Samples of digital silence after which the floor is 0: longer than the usual burst of lost
packets (one to three 20 ms frames), shorter than most pauses between words."""
_FLOAT32: Final = np.dtype(np.float32)
"""Energy in float32: exact enough (24-bit mantissa) and the quickest dot product numpy has."""


def _check_ms(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of milliseconds, got {value!r}")
    if value % FRAME_MS:
        raise ConfigurationError(
            f"{name} must be a whole number of {FRAME_MS} ms frames, got {value}"
        )


class NoiseGate:
    """One per call. Tracks the noise floor from every frame's energy and lets a VAD's verdict
    through only when the frame is clearly above it.

    ``min_rms`` and ``max_rms`` bound the gate (int16 RMS, ``0 <= min_rms <= max_rms < 32768``);
    ``margin_db`` (``>= 0``) is how far above the floor a frame must be; the floor is the lowest
    60 ms mean energy over the last ``window_ms``, kept as the minima of ``block_ms`` blocks (both
    whole 20 ms frames, ``window_ms`` a multiple of ``block_ms``). Anything else raises
    :class:`~phoneactors.errors.ConfigurationError`. Each :meth:`admit` is O(1): one dot product,
    and a minimum over ``window_ms // block_ms`` numbers once per block.
    """

    def __init__(
        self,
        *,
        min_rms: float = 0.0,
        margin_db: float = DEFAULT_MARGIN_DB,
        max_rms: float = DEFAULT_MAX_RMS,
        window_ms: int = 5000,
        block_ms: int = 500,
    ) -> None:
        if not 0 < max_rms < 32768:  # also False for NaN
            raise ConfigurationError(f"max_rms must be above 0 and below 32768, got {max_rms!r}")
        if not 0 <= min_rms <= max_rms:
            raise ConfigurationError(
                f"min_rms must be between 0 and max_rms ({max_rms:g}), got {min_rms!r}"
            )
        if not 0 <= margin_db < math.inf:
            raise ConfigurationError(f"margin_db must be a finite number >= 0, got {margin_db!r}")
        _check_ms("window_ms", window_ms)
        _check_ms("block_ms", block_ms)
        if window_ms % block_ms:
            raise ConfigurationError(
                f"window_ms ({window_ms}) must be a whole number of blocks of {block_ms} ms"
            )
        self._factor = math.pow(10.0, margin_db / 10.0)
        """The margin as a ratio of mean squares."""
        self._low = float(min_rms) ** 2
        self._high = float(max_rms) ** 2
        self._block_samples = block_ms * SAMPLE_RATE // 1000
        self._blocks: collections.deque[float] = collections.deque(maxlen=window_ms // block_ms)
        """The minimum mean square of each finished block, oldest first (``inf``: none measured)."""
        self._last = self._second = -1.0
        """The energies of the last two measured frames, newest first (-1.0: none yet)."""
        self._silent = 0
        """Samples of digital silence since the last frame that was not."""
        self._block_min = math.inf
        self._block_filled = 0
        self._floor = math.inf
        """min(blocks, current block); ``inf`` while nothing in the window was measured."""
        self._gate = self._low

    @property
    def floor_rms(self) -> float:
        """The noise floor as an RMS (int16 units).

        0.0 before any measurement, and while the window holds 100 ms of digital silence.
        """
        return 0.0 if self._floor == math.inf else math.sqrt(self._floor)

    @property
    def gate_rms(self) -> float:
        """The RMS a voiced frame must reach to be admitted; ``min_rms`` before any measurement."""
        return math.sqrt(self._gate)

    def admit(self, frame: PCM, voiced: bool) -> bool:
        """Update the floor with ``frame``; return whether it is ``voiced`` and loud enough.

        Loud enough means a mean square at or above the gate *after* this frame is counted, so a
        first frame is measured against itself: it is admitted only at ``max_rms`` or louder.
        Every frame updates the floor, voiced or not. ``frame`` is any non-empty 1-D array of
        int16 samples at 8 kHz (usually one 20 ms frame); the floor's window counts its
        samples. An empty frame raises ``ValueError``. With ``min_rms`` 0, a frame of digital
        silence passes the gate (0 >= 0) while the floor is 0.
        """
        energy = self._measure(frame)  # first: the floor counts every frame
        return bool(voiced) and energy >= self._gate

    def measure(self, frame: PCM) -> bool:
        """Update the floor with ``frame``, as :meth:`admit` does; return whether it is *over
        the gate*: loud enough, whatever a VAD says of it, and not digital silence.

        A VAD misses the soft start of a word on a noisy line ("t", "s", a breathy first
        syllable) more often than it calls hiss speech; a frame 6 dB over the line's own noise
        is sound all the same. The call lets such frames count toward the start of speech (see
        :meth:`~phoneactors.segmenter.SpeechSegmenter.feed`). ``voiced and gate.measure(frame)``
        is :meth:`admit`'s verdict, but for digital silence.
        """
        energy = self._measure(frame)
        return energy >= self._gate and energy >= _SILENT_SQUARE

    def _measure(self, frame: PCM) -> float:
        """Count ``frame`` toward the floor; its mean square."""
        samples = frame.astype(_FLOAT32)
        count = len(samples)
        if not count:
            raise ValueError("a frame must hold at least one sample")
        energy = float(samples.dot(samples)) / count
        if energy >= _SILENT_SQUARE:
            self._silent = 0
            last, second = self._last, self._second
            self._last, self._second = energy, last
            if second >= 0.0:
                level = (energy + last + second) / 3.0
            else:  # the first frames of the call
                level = energy if last < 0.0 else (energy + last) / 2.0
        else:
            self._silent += count
            level = 0.0 if self._silent >= _SILENT_RUN else math.inf
        if level < self._block_min:
            self._block_min = level
            if level < self._floor:
                self._floor = level
                self._gate = self._gate_for(level)
        self._block_filled += count
        if self._block_filled >= self._block_samples:
            self._end_block()
        return energy

    def _end_block(self) -> None:
        """Push the finished block's minimum; the oldest block leaves, so the floor may rise."""
        self._block_filled -= self._block_samples
        self._blocks.append(self._block_min)
        self._block_min = math.inf
        self._floor = min(self._blocks)
        self._gate = self._gate_for(self._floor)

    def _gate_for(self, floor: float) -> float:
        if floor == math.inf:
            return self._low
        return min(max(floor * self._factor, self._low), self._high)

    def __repr__(self) -> str:
        return f"NoiseGate(floor_rms={self.floor_rms:.1f}, gate_rms={self.gate_rms:.1f})"
