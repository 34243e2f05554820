"""Shared by the benchmark scripts: the machine, a real server in a subprocess, statistics."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def machine() -> str:
    """One line: CPU model, cores, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, Python {platform.python_version()}, {platform.system()}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), by linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summary_row(name: str, values: Sequence[float], unit: str = "ms") -> str:
    if not values:
        return f"| {name} | - | - | - | - | 0 |"
    return (
        f"| {name} | {statistics.median(values):.0f} {unit} | {percentile(values, 95):.0f} {unit}"
        f" | {min(values):.0f} {unit} | {max(values):.0f} {unit} | {len(values)} |"
    )


@dataclass
class Server:
    """A ``python -m phoneactors`` subprocess; its stderr is kept in :attr:`log`."""

    process: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/stream"

    def turn_lines(self) -> list[dict[str, float]]:
        """The per-turn timing log lines, parsed: stage -> milliseconds."""
        turns = []
        for line in self.log:
            if "turn: total=" not in line:
                continue
            stages = dict(re.findall(r"(\w+)=(\d+(?:\.\d+)?)ms", line))
            turns.append({k: float(v) for k, v in stages.items()})
        return turns


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``python -m phoneactors --port 0 *args``, wait for its listening line, stop it."""
    records = tempfile.mkdtemp(prefix="phoneactors-bench-")
    process = subprocess.Popen(
        [sys.executable, "-m", "phoneactors", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Call records are on, as by default, but kept out of the checkout.
        env={**os.environ, "PHONEACTORS_RECORDS": f"{records}/calls.db", **(env or {})},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    server = Server(process, "")
    stderr = process.stderr

    def collect() -> None:
        for line in stderr:
            server.log.append(line.rstrip("\n"))

    threading.Thread(target=collect, daemon=True).start()
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            process.wait(5)
            raise RuntimeError("server did not start:\n" + "\n".join(server.log[-20:]))
        server.url = match.group(1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
