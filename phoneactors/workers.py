"""What the worker processes of one server share (``phoneactors --workers N``).

The supervisor (:mod:`phoneactors.cli.workers`) makes a private folder and starts ``N``
workers; each binds the same port with ``SO_REUSEPORT`` and the kernel spreads connections
over them. A caller's webhook, media stream and answering-machine result may each reach a
different worker, so through the folder the workers share:

* **a board** (``board``, a small memory-mapped file): per worker, whether it is ready, its
  calls in progress and its inference wait, so ``--max-calls`` and ``--max-inference-wait-ms``
  hold for the whole server;
* **metrics**: each worker rewrites its ``/metrics`` text every second, and ``GET /metrics`` on
  any worker sums them (:func:`phoneactors.metrics.merge_exposition`);
* **answering-machine results** for a call whose stream is on another worker;
* **the softphone's secret**, so a page from one worker opens a stream on another.

Nothing here needs an event loop; the server calls it from its own tasks.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from .errors import ConfigurationError
from .metrics import merge_exposition

if TYPE_CHECKING:
    from .call_control import CallDirectory
    from .metrics import Metrics

__all__ = [
    "ENV_COUNT",
    "ENV_FOLDER",
    "ENV_INDEX",
    "MAX_WORKERS",
    "WorkerBoard",
    "share_with_peers",
]

logger = logging.getLogger("phoneactors.workers")

ENV_FOLDER: Final = "PHONEACTORS_WORKER_DIR"
ENV_INDEX: Final = "PHONEACTORS_WORKER_INDEX"
ENV_COUNT: Final = "PHONEACTORS_WORKER_COUNT"

MAX_WORKERS: Final = 64
SHARE_INTERVAL: Final = 1.0
"""Seconds between a worker's updates of its metrics (and its look for others' news)."""
METRICS_STALE_AFTER: Final = 10.0
"""Seconds after which a worker's metrics file is taken for a dead worker's and left out."""
ANSWERS_KEPT_FOR: Final = 3600.0
"""Seconds an answering-machine result waits for its call's stream before it is deleted."""

_SLOT: Final = struct.Struct("<qqd")  # ready (0/1), calls in progress, inference wait (s)
_CALL_SID: Final = re.compile(r"[A-Za-z0-9]{1,64}")
"""What a call sid must look like before it names a file."""


class WorkerBoard:
    """One worker's view of the shared folder (``index`` of ``count``); the supervisor uses
    index ``-1``. Writes go to this worker's own slot and files only."""

    def __init__(self, folder: Path, index: int, count: int) -> None:
        if count < 1 or not -1 <= index < count:
            raise ConfigurationError(f"worker {index} of {count} does not exist")
        self.folder = folder
        self.index = index
        self.count = count
        try:
            with open(folder / "board", "r+b") as file:
                self._board = mmap.mmap(file.fileno(), _SLOT.size * count)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot open the workers' board in {folder}: {exc}") from exc

    @classmethod
    def create(cls, folder: Path, count: int) -> WorkerBoard:
        """Lay out an empty board, the softphone secret and the answers folder in ``folder``
        (which the caller made private) and open it as the supervisor."""
        (folder / "board").write_bytes(bytes(_SLOT.size * count))
        (folder / "answers").mkdir(mode=0o700)
        secret = folder / "secret"
        secret.touch(mode=0o600)
        secret.write_bytes(secrets.token_bytes(32))
        return cls(folder, -1, count)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> WorkerBoard | None:
        """The board a worker was started with (``None`` when this process is no worker)."""
        folder = environ.get(ENV_FOLDER)
        if folder is None:
            return None
        try:
            index, count = int(environ[ENV_INDEX]), int(environ[ENV_COUNT])
        except (KeyError, ValueError):
            raise ConfigurationError(
                f"{ENV_FOLDER} is set, so {ENV_INDEX} and {ENV_COUNT} must be numbers "
                "(they are set by `phoneactors --workers N`, not by hand)"
            ) from None
        return cls(Path(folder), index, count)

    def close(self) -> None:
        self._board.close()

    # -- the board ------------------------------------------------------------------------

    def _slot(self, index: int) -> tuple[int, int, float]:
        ready, active, wait = _SLOT.unpack_from(self._board, index * _SLOT.size)
        return ready, active, wait

    def publish(self, *, ready: bool, active: int, wait: float) -> None:
        """This worker's state, for the others and the supervisor."""
        _SLOT.pack_into(self._board, self.index * _SLOT.size, int(ready), active, wait)

    def reset(self, index: int) -> None:
        """Forget a worker that ended (the supervisor, before starting it again)."""
        _SLOT.pack_into(self._board, index * _SLOT.size, 0, 0, 0.0)

    def _others(self) -> list[tuple[int, int, float]]:
        return [self._slot(i) for i in range(self.count) if i != self.index]

    def others_active(self) -> int:
        """Calls in progress on the other workers."""
        return sum(active for _, active, _ in self._others())

    def others_wait(self) -> float:
        """The longest recent inference wait on the other workers, in seconds."""
        return max((wait for _, _, wait in self._others()), default=0.0)

    def ready(self) -> list[bool]:
        """Which workers are ready (for the supervisor)."""
        return [bool(self._slot(i)[0]) for i in range(self.count)]

    def softphone_secret(self) -> bytes:
        return (self.folder / "secret").read_bytes()

    # -- metrics ----------------------------------------------------------------------------

    def _metrics_file(self, index: int) -> Path:
        return self.folder / f"metrics-{index}.prom"

    def write_metrics(self, text: str) -> None:
        """Replace this worker's metrics text (atomically: readers never see half of it)."""
        target = self._metrics_file(self.index)
        partial = target.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)

    def retire(self, index: int) -> None:
        """Keep the counters and histograms of worker ``index``, which ended, so the sums
        never go down (its gauges, its calls in progress, end with it). For the supervisor;
        what the worker counted in its last second is lost. One call at a time."""
        path = self._metrics_file(index)
        retired = self.folder / "retired.prom"
        try:
            texts = [path.read_text(encoding="utf-8")]
        except OSError:
            return  # it never wrote any, or they were retired already
        with contextlib.suppress(FileNotFoundError):
            texts.append(retired.read_text(encoding="utf-8"))
        merged = merge_exposition(texts, kinds={"counter", "histogram"})
        partial = retired.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(merged)
        partial.replace(retired)
        path.unlink()

    def others_metrics(self) -> list[str]:
        """The other workers' latest metrics texts, leaving out any not rewritten lately, and
        what the workers that ended counted."""
        texts = []
        with contextlib.suppress(FileNotFoundError):
            texts.append((self.folder / "retired.prom").read_text(encoding="utf-8"))
        now = time.time()
        for index in range(self.count):
            if index == self.index:
                continue
            path = self._metrics_file(index)
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime < METRICS_STALE_AFTER:
                    texts.append(path.read_text(encoding="utf-8"))
        return texts

    # -- answering-machine results ----------------------------------------------------------

    def post_answer(self, call_sid: str, answered_by: str) -> bool:
        """Leave who answered ``call_sid`` for the worker its stream is on; ``False`` for a
        call sid that cannot name a file."""
        if not _CALL_SID.fullmatch(call_sid):
            return False
        path = self.folder / "answers" / call_sid
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(answered_by[:100], encoding="utf-8")
        partial.replace(path)
        return True

    def take_answer(self, call_sid: str) -> str | None:
        """Who answered ``call_sid``, if another worker was told: removed, so one worker
        takes it."""
        if not _CALL_SID.fullmatch(call_sid):
            return None
        path = self.folder / "answers" / call_sid
        taken = path.with_suffix(f".{os.getpid()}.taken")
        try:
            path.replace(taken)  # atomic: of two workers, one gets it
        except OSError:
            return None
        try:
            return taken.read_text(encoding="utf-8")
        finally:
            taken.unlink(missing_ok=True)

    def forget_old_answers(self, older_than: float = ANSWERS_KEPT_FOR) -> int:
        """Delete results that waited too long for their call; how many."""
        removed = 0
        cutoff = time.time() - older_than
        for path in (self.folder / "answers").iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


async def share_with_peers(
    board: WorkerBoard,
    publish: Callable[[], None],
    metrics: Metrics,
    directory: CallDirectory,
    interval: float = SHARE_INTERVAL,
) -> None:
    """A worker's side of the sharing, until cancelled: its state on the board (``publish``),
    its metrics text, and answering-machine results other workers took for its calls."""
    rounds = 0
    while True:
        publish()
        text = metrics.render().decode("utf-8")
        sids = directory.call_sids()
        try:
            answers = await trio.to_thread.run_sync(_exchange, board, text, sids, rounds)
        except OSError as exc:
            logger.warning("workers: could not share this worker's state: %s", exc)
        else:
            for call_sid, answered_by in answers:
                directory.answered(call_sid, answered_by)
        rounds += 1
        await trio.sleep(interval)


def _exchange(
    board: WorkerBoard, metrics: str, call_sids: list[str], rounds: int
) -> list[tuple[str, str]]:
    board.write_metrics(metrics)
    if rounds % 60 == 59:
        board.forget_old_answers()
    return [
        (call_sid, answered_by)
        for call_sid in call_sids
        if (answered_by := board.take_answer(call_sid)) is not None
    ]
