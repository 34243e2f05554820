"""Voice activity detection with Silero VAD v6, from the ONNX file that faster-whisper ships.

faster-whisper (a dependency of phoneactors) carries ``faster_whisper/assets/silero_vad_v6.onnx``
(1.2 MB); onnxruntime (also already installed, for faster-whisper and hibari) runs it, so this
engine needs no extra package and no torch. Nothing is downloaded.

That export of the model hears 16 kHz audio only, in windows of 512 samples (32 ms) with the
last 64 samples of the previous window in front as context, and carries a recurrent state
(``h`` and ``c``, each ``1 x 1 x 128``) from one window to the next. Phone audio is 8 kHz in 20 ms
frames, so each call's detector upsamples every frame to 16 kHz with a short interpolation
filter (1 ms of delay), collects the result until a whole window is there, runs the model on it,
and answers each frame with the most recent speech probability compared with the threshold.
One 20 ms frame adds 320 samples at 16 kHz, so five frames out of eight run the model once and
the others run nothing.

The ONNX session is loaded once per process (in :meth:`SileroVad.load`, in a worker thread) and
shared by every call; each call's detector keeps its own state, context and buffer. Detection runs
on the trio thread: one model window costs roughly 0.1 to 0.2 ms on one core (see
``benchmarks/engines.py``), so the session is pinned to one thread to keep that predictable.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ..audio import FRAME_SAMPLES, PCM, SAMPLE_RATE
from ..errors import ConfigurationError, EngineError
from .base import Limiter, LoadOnce
from .scheduling import Priority

__all__ = ["SileroDetector", "SileroVad", "bundled_model_path"]

SILERO_RATE: Final = 16000
"""The rate the faster-whisper export of Silero VAD v6 was made for (it has no rate input)."""
WINDOW: Final = 512
"""Samples (at 16 kHz, 32 ms) the model judges at a time."""
CONTEXT: Final = 64
"""Samples of the previous window put in front of each window; the model's input is 576 wide."""
STATE_SHAPE: Final = (1, 1, 128)
"""Shape of each of the model's two recurrent state tensors, ``h`` and ``c``."""
DEFAULT_THRESHOLD: Final = 0.5
"""Speech probability at or above which a frame counts as speech (Silero's usual choice)."""
MODEL_FILE: Final = "silero_vad_v6.onnx"

_UPSAMPLE: Final = SILERO_RATE // SAMPLE_RATE
_FILTER_TAPS: Final = 33
"""Interpolation filter length at 16 kHz: 1 ms of delay, stop band from about 4.5 kHz (phone
audio has nothing above 3.4 kHz to lose)."""
_WARM_UP_WINDOWS: Final = 8


@functools.cache
def _interpolation_filter() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A Kaiser-windowed sinc low-pass at 4 kHz for 16 kHz audio, with a gain of two so that
    zero-stuffed 8 kHz audio comes out at its original level, split into its two phases: the
    even taps make the even 16 kHz samples, the odd taps the odd ones."""
    n = np.arange(_FILTER_TAPS) - (_FILTER_TAPS - 1) / 2
    taps = np.sinc(n / _UPSAMPLE) * np.kaiser(_FILTER_TAPS, 6.0)
    taps *= _UPSAMPLE / taps.sum()
    even, odd = (np.ascontiguousarray(taps[phase::2], dtype=np.float32) for phase in (0, 1))
    even.flags.writeable = odd.flags.writeable = False
    return even, odd


def bundled_model_path() -> Path:
    """Where faster-whisper's copy of the Silero VAD v6 model is, found without importing
    faster-whisper (which would load CTranslate2).

    Raises :class:`~phoneactors.errors.ConfigurationError` when faster-whisper is not installed
    or its package has no such file.
    """
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the 'silero' voice activity engine uses the Silero VAD model that the package "
            "faster-whisper ships, and faster-whisper is not installed: pip install "
            "faster-whisper (it is a dependency of phoneactors; reinstall phoneactors)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "assets" / MODEL_FILE
        if path.is_file():
            return path
    raise ConfigurationError(
        f"the installed faster-whisper has no assets/{MODEL_FILE}: pip install -U "
        "faster-whisper, or pass the path of a Silero VAD v6 ONNX file as model_path"
    )


def _require_onnxruntime() -> None:
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigurationError(
            "the 'silero' voice activity engine needs the package onnxruntime: pip install "
            "onnxruntime (faster-whisper and hibari-tts, dependencies of phoneactors, bring it; "
            "reinstall phoneactors)"
        )


class SileroDetector:
    """One call's detector: its own model state, context, interpolation history and buffer.

    ``session`` is a loaded onnxruntime session of the model (shared; :meth:`SileroVad.new_detector`
    passes it). Not thread-safe (it is used by one call, on the trio thread). The shared session is.
    """

    def __init__(self, session: Any, threshold: float = DEFAULT_THRESHOLD) -> None:
        self._session = session
        self.threshold = threshold
        self._even_taps, self._odd_taps = _interpolation_filter()
        self._history = np.zeros(len(self._even_taps) - 1, dtype=np.float32)
        """The last 8 kHz samples the interpolation filter still needs."""
        self._pending = np.zeros(WINDOW + FRAME_SAMPLES * _UPSAMPLE, dtype=np.float32)
        self._filled = 0
        """``_pending[:_filled]`` is 16 kHz audio not yet judged (less than a window)."""
        self._input = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        """The model's input: the previous window's last 64 samples, then the new window."""
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.probability = 0.0
        """Speech probability of the most recent window (0.0 until the first one is judged)."""
        self.windows = 0
        """Windows judged so far."""

    def is_speech(self, frame: PCM) -> bool:
        """Whether one 20 ms frame of 8 kHz int16 audio (160 samples) is speech.

        The answer is the latest window's speech probability against the threshold, so it lags
        the audio by up to one window (32 ms) plus 1 ms of filter delay. Raises ``ValueError``
        for a frame of any other length and :class:`~phoneactors.errors.EngineError` when
        onnxruntime fails. Never blocks; runs the model at most once.
        """
        samples = np.asarray(frame)
        if samples.ndim != 1 or len(samples) != FRAME_SAMPLES:
            raise ValueError(
                f"the Silero VAD needs one 20 ms frame of 8 kHz mono audio ({FRAME_SAMPLES} "
                f"samples); got shape {samples.shape}"
            )
        # Upsample by two, polyphase: the even outputs come from the filter's even taps and the
        # odd outputs from its odd taps, both run over the 8 kHz samples (no zero-stuffing).
        line = np.concatenate([self._history, samples.astype(np.float32) * (1.0 / 32768.0)])
        self._history = line[-len(self._history) :]
        start, end = self._filled, self._filled + len(samples) * _UPSAMPLE
        self._pending[start:end:2] = np.convolve(line, self._even_taps, mode="valid")
        self._pending[start + 1 : end : 2] = np.convolve(line[1:], self._odd_taps, mode="valid")
        self._filled = end
        if self._filled >= WINDOW:  # 320 new samples a frame: never two windows at once
            self._input[0, CONTEXT:] = self._pending[:WINDOW]
            rest = self._filled - WINDOW
            self._pending[:rest] = self._pending[WINDOW : self._filled]
            self._filled = rest
            self._judge()
        return self.probability >= self.threshold

    def _judge(self) -> None:
        """Run the model on ``_input`` (context, then a new window) and keep what it says."""
        try:
            probability, self._h, self._c = self._session.run(
                None, {"input": self._input, "h": self._h, "c": self._c}
            )
        except Exception as exc:
            raise EngineError(f"the silero VAD failed on a window of audio: {exc!r}") from exc
        self._input[0, :CONTEXT] = self._input[0, -CONTEXT:]  # the next window's context
        self.probability = float(probability[0])
        self.windows += 1


class SileroVad:
    """The Silero VAD v6 voice activity engine, shared by all calls.

    ``threshold`` is the speech probability (strictly between 0 and 1; default 0.5) at or above
    which a frame counts as speech: raise it on noisy lines. ``model_path`` is a Silero VAD v6
    ONNX file with the same inputs (``None``: the copy faster-whisper ships). ``limiter`` bounds
    the worker threads used by :meth:`load`.

    Construction is cheap and imports nothing heavy; it raises
    :class:`~phoneactors.errors.ConfigurationError` for a bad threshold, a missing onnxruntime
    or faster-whisper, or a ``model_path`` that is not a file.
    """

    name = "silero"

    def __init__(
        self,
        *,
        limiter: Limiter,
        threshold: float = DEFAULT_THRESHOLD,
        model_path: str | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(
                f"the Silero VAD threshold must be between 0 and 1 (exclusive), got {threshold}"
            )
        _require_onnxruntime()
        if model_path is None:
            path = bundled_model_path()
        else:
            path = Path(model_path).expanduser()
            if not path.is_file():
                raise ConfigurationError(
                    f"the Silero VAD model file {str(path)!r} does not exist; leave the path out "
                    f"to use the {MODEL_FILE} that faster-whisper ships"
                )
        self.model_path = str(path)
        self.threshold = threshold
        self.limiter = limiter
        self._session: LoadOnce[Any] = LoadOnce(
            self.name, self._load_sync, limiter=limiter, priority=Priority.SPEAK
        )

    def __repr__(self) -> str:
        return f"SileroVad(threshold={self.threshold}, model_path={self.model_path!r})"

    async def load(self) -> None:
        """Load the ONNX model, check its inputs and outputs, and warm it up, in a worker thread.

        Idempotent and safe to call from many tasks at once: the model loads exactly once.
        Raises :class:`~phoneactors.errors.ConfigurationError` when the file cannot be loaded or
        is not a Silero VAD v6 model with the expected inputs. If cancelled, returns at once; the
        worker finishes in the background, its session is discarded, and the next ``load()``
        starts over.
        """
        await self._session.load()

    def new_detector(self) -> SileroDetector:
        """A fresh detector for one call, with its own state, sharing the loaded model.

        Raises :class:`~phoneactors.errors.EngineError` if :meth:`load` has not finished.
        """
        session = self._session.model
        if session is None:
            raise EngineError("the silero VAD is not loaded yet: await its load() first")
        return SileroDetector(session, self.threshold)

    # -- worker-thread side ---------------------------------------------------------------

    def _load_sync(self) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one window is tiny: more threads only add overhead
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            session = onnxruntime.InferenceSession(
                self.model_path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name} could not load the model {self.model_path!r}: {exc!r}"
            ) from exc
        self._check_graph(session)
        detector = SileroDetector(session, self.threshold)
        quiet = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        try:
            while detector.windows < _WARM_UP_WINDOWS:
                detector.is_speech(quiet)
        except EngineError as exc:
            raise ConfigurationError(
                f"{self.name}: the model {self.model_path!r} loaded but failed its warm-up: "
                f"{exc.__cause__!r}"
            ) from exc
        return session

    def _check_graph(self, session: Any) -> None:
        inputs = {node.name: list(node.shape) for node in session.get_inputs()}
        outputs = [node.name for node in session.get_outputs()]
        state = list(STATE_SHAPE)
        width = inputs.get("input", [None, None])[-1]
        if (
            inputs.get("h") != state
            or inputs.get("c") != state
            or width != CONTEXT + WINDOW
            or len(outputs) != 3
        ):
            raise ConfigurationError(
                f"{self.model_path!r} is not the Silero VAD v6 model this engine runs: expected "
                f"inputs input (n x {CONTEXT + WINDOW}), h and c ({' x '.join(map(str, state))}) "
                f"and three outputs, found inputs {inputs} and outputs {outputs}"
            )
