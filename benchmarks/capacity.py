"""Capacity: how many concurrent calls one server process carries, and where its CPU goes.

    python benchmarks/capacity.py [--engines fake|real] [--start 10] [--step 10] [--max 200]
                                  [--seconds 20] [--clients 0] [--spread S] [--webhook]
                                  [--server-arg=--OPTION=VALUE …]
    python benchmarks/capacity.py --profile 50 [--seconds 15] [--talking]

**Ramp.** Starts the server in a subprocess — with ``--engines fake`` a small ``python -c``
launcher that calls :func:`phoneactors.server.serve` with :class:`~phoneactors.testing.FakeSpeech`
engines and the :class:`~phoneactors.conversation.Parrot`, with ``--engines real`` ``python -m
phoneactors --port 0`` — then, for each level of ``N`` concurrent calls, starts client
subprocesses (``--clients``; 0 = one per 100 calls, at most 2) that each run their share of the
calls as :class:`~phoneactors.testing.FakeTwilio` over real websockets (``open_twilio_stream``).
Every caller talks about 40 % of the time: an utterance of 1.3 to 2.4 s, then silence until its
talk time is 40 % of the cycle. Every phrase reads complete, so the server answers after the
short end-of-turn silence: one that trails off (a number being read out) would make it wait
for more on purpose, which ``turn_taking.py`` measures, not this. Calls connect (over
``--spread`` seconds; with ``--webhook`` each first posts the voice webhook as Twilio does, and
a busy answer counts as busy) and hear the greeting first; only the next ``--seconds`` count
(with ``--spread``, callers start talking as soon as they are connected, as they would; the
first turns are counted only once all have had time to arrive). Per level: p50/p95
voice-to-voice (caller's last utterance frame sent → first bot media received, client side; a
turn with no reply in 5 s counts as 5 s), server CPU (psutil, 100 % = one core), the clients'
CPU, dropped inbound frames (the server's
``dropped inbound frame`` warnings), and, from the server's own turn log (real engines), how
long speech-to-text still ran after the end-of-turn silence (``stt``) and how long the first
sentence took to synthesize (``tts``), after the silence that ended the turn (``end of turn``:
300 ms when the words at the pause were judged in time, up to 1.6 s when not), p50 / p90 in
ms: where a slow turn waited. The ramp stops at the first level with p95 > 1.5 s, a
dropped frame, or a saturated server (≥ ``--cpu-limit`` % of one core with fake engines, of all
cores with real ones).

**Profile.** ``--profile N`` runs the fake-engine server with N idle calls (silence at 50 frames
a second; with ``--talking``, callers who talk and hear replies as in the ramp), records it
with ``py-spy`` (``pip install py-spy``) for ``--seconds``, and prints the
top functions by own and by cumulative time and the CPU per inbound frame split by library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from harness import REPO_ROOT, machine, percentile

V2V_LIMIT_MS = 1500.0
NO_REPLY_MS = 5000.0
TALK_SHARE = 0.4
PHRASES = [
    "What time do you open tomorrow?",
    "Can I book a table for two tonight?",
    "Is the pharmacy open on Sunday?",
    "I would like my account balance.",
    "How much is a museum ticket?",
    "Do you deliver to the north side?",
    "My order number is four five six, please.",
    "Could you repeat that please?",
]

# The fake-engine server. The fake STT only knows texts registered in its own process, so the
# launcher registers PHRASES in order: slot i <-> the tone the clients make for PHRASES[i].
FAKE_LAUNCHER = """
import logging, sys, trio
from phoneactors.call import CallSettings
from phoneactors.conversation import Parrot
from phoneactors.server import ServerConfig, serve
from phoneactors.testing import FakeSpeech
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
speech = FakeSpeech()
for text in json.loads(sys.argv[1]):
    speech.stt.register(text)
async def main():
    # Idle calls (--profile) stay idle: no "are you still there?".
    settings = CallSettings(idle_timeout=None)
    short = os.environ.get("PHONEACTORS_SHORT_STREAMS", "1") == "1"  # calls_per_core.py
    config = ServerConfig(
        port=0, max_calls=100000, records=None, call_settings=settings, short_streams=short
    )
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve, Parrot, speech.engines(), config)
        print(f"listening on http://{host}:{port}", flush=True)
trio.run(main)
""".replace("import logging", "import json, logging, os", 1)


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/stream"

    def drops(self) -> int:
        return sum("dropped inbound frame" in line for line in self.log)

    def inference_waits(self) -> dict[str, list[float]]:
        """The server's ``phoneactors_inference_wait_seconds`` histogram from ``/metrics``:
        cumulative counts by priority, one per bucket (``+Inf`` last)."""
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        found: dict[str, list[float]] = {}
        pattern = (
            r'phoneactors_inference_wait_seconds_bucket\{le="([^"]+)",priority="(\w+)"\} (\S+)'
        )
        for _, priority, count in re.findall(pattern, text):
            found.setdefault(priority, []).append(float(count))
        return found

    def stages(self, since: int) -> dict[str, list[float]]:
        """The server's own turn timing (its ``turn: total=…ms stt=…ms …`` log lines) from
        log line ``since`` on: milliseconds by stage."""
        found: dict[str, list[float]] = {}
        for line in self.log[since:]:
            if " turn: total=" not in line:
                continue
            for stage, ms in re.findall(r"(\w+)=(\d+)ms", line.split(" turn: ", 1)[1]):
                found.setdefault(stage, []).append(float(ms))
        return found


def start_server(
    engines: str, max_calls: int, prefix: list[str] | None = None, extra: list[str] | None = None
) -> Server:
    if engines == "fake":
        command = [sys.executable, "-c", FAKE_LAUNCHER, json.dumps(PHRASES)]
    else:
        command = [sys.executable, "-m", "phoneactors", "--port", "0"]
        command += ["--max-calls", str(max_calls), "--log-level", "INFO", *(extra or [])]
    records = tempfile.mkdtemp(prefix="phoneactors-capacity-")
    process = subprocess.Popen(
        [*(prefix or []), *command],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PHONEACTORS_RECORDS": f"{records}/calls.db"},
    )
    server = Server(process)
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = process.stderr

    def collect() -> None:
        for line in stderr:
            server.log.append(line.rstrip("\n"))

    threading.Thread(target=collect, daemon=True).start()
    for line in process.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            server.url = match.group(1)
            break
    if not server.url:
        process.wait(5)
        raise RuntimeError("server did not start:\n" + "\n".join(server.log[-20:]))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the real engines load after the socket listens
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.5)
    return server


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


# -- the client subprocess ----------------------------------------------------------------------


VOICE_ENV = "PHONEACTORS_CAPACITY_VOICE"
"""Tells the client processes whether the server has real engines (then callers speak)."""


async def _real_speech() -> list[Any]:
    """PHRASES spoken by hibari, 8 kHz, trailing silence trimmed to the last voiced frame."""
    import numpy as np
    import trio

    from phoneactors.engines.hibari import HibariTTS

    voice = HibariTTS(limiter=trio.CapacityLimiter(1), speed=0.95)
    await voice.load()
    clips = []
    for text in PHRASES:
        pcm = await voice.synthesize(text)
        frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
        loud = np.nonzero(np.sqrt((frames**2).mean(axis=1)) > 300)[0]
        clips.append(pcm[loud[0] * 160 : (loud[-1] + 1) * 160])
    return clips


def client_main(
    url: str,
    calls: int,
    start: float,
    end: float,
    seed: int,
    idle: bool,
    spread: float = 0.0,
    webhook: bool = False,
) -> None:
    """Run ``calls`` callers until wall time ``end``; print one JSON line of results.

    Callers arrive over ``spread`` seconds (0: within the first 3). With ``webhook`` each first
    posts Twilio's voice webhook, as Twilio does, and connects its stream only when the answer
    says so; a busy answer counts as ``busy``."""
    import random

    import trio

    from phoneactors.testing import FakeSpeech, open_twilio_stream
    from phoneactors.twilio import SendMedia

    if os.environ.get(VOICE_ENV) == "real":
        audio = trio.run(_real_speech)  # real engines need real speech
    else:
        speech = FakeSpeech()
        audio = [speech.caller_audio(text) for text in PHRASES]  # slots 0..7, as the launcher's
    rng = random.Random(seed)
    result: dict[str, object] = {
        "latencies": [],
        "ready": 0,
        "failed": 0,
        "frames": 0,
        "busy": 0,
    }
    webhook_url = url.replace("ws://", "http://").removesuffix("/stream") + "/"

    def admitted(index: int) -> bool:
        form = urllib.parse.urlencode(
            {"CallSid": f"CA{seed:016d}{index:016d}", "From": "+15550100001", "To": "+15550100002"}
        ).encode()
        with urllib.request.urlopen(webhook_url, data=form, timeout=10) as response:
            return "<Connect>" in response.read().decode()

    latencies: list[float] = result["latencies"]  # type: ignore[assignment]

    async def caller(index: int) -> None:
        window = spread or min(3.0, max(0.5, start - time.time() - 2))
        await trio.sleep(rng.uniform(0, window))
        try:
            if webhook and not await trio.to_thread.run_sync(admitted, index):
                result["busy"] += 1  # type: ignore[operator]
                return
            async with open_twilio_stream(url) as fake:
                with trio.move_on_after(10):
                    await fake.wait_for_bot_to_finish()  # the greeting
                result["ready"] += 1  # type: ignore[operator]
                await trio.sleep(
                    (0 if spread else max(0.0, start - time.time())) + rng.uniform(0, 2)
                )
                while time.time() < end and not fake.closed.is_set():
                    if idle:
                        await trio.sleep(end - time.time())
                        break
                    utterance = audio[rng.randrange(len(audio))]
                    talk = len(utterance) / 8000
                    await fake.play(utterance)
                    said = trio.current_time()
                    sent = len(fake.outbound)
                    with trio.move_on_after(NO_REPLY_MS / 1000):
                        await fake.wait_for(
                            lambda sent=sent: any(
                                isinstance(e, SendMedia) for _, e in fake.outbound[sent:]
                            )
                        )
                    first = next(
                        (t for t, e in fake.outbound[sent:] if isinstance(e, SendMedia)), None
                    )
                    if start <= time.time() < end:
                        latencies.append(NO_REPLY_MS if first is None else (first - said) * 1000)
                    with trio.move_on_after(max(0.1, end - time.time())):
                        await fake.wait_for_bot_to_finish()
                    rest = talk / TALK_SHARE - talk - (trio.current_time() - said)
                    await trio.sleep(max(0.3, rest))
                result["frames"] += fake.caller_frames_sent  # type: ignore[operator]
        except Exception:  # a refused or broken connection
            result["failed"] += 1  # type: ignore[operator]

    async def run_all() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(calls):
                nursery.start_soon(caller, i)

    trio.run(run_all)
    print(json.dumps(result), flush=True)


# -- the ramp -----------------------------------------------------------------------------------


@dataclass
class Level:
    calls: int
    latencies: list[float]
    server_cpu: float
    client_cpu: list[float]
    drops: int
    ready: int
    failed: int
    stages: dict[str, list[float]] = field(default_factory=dict)
    busy: int = 0

    def row(self) -> str:
        lat = self.latencies or [float("nan")]
        clients = " + ".join(f"{c:.0f}" for c in self.client_cpu)
        return (
            f"| {self.calls} | {percentile(lat, 50):.0f} ms | {percentile(lat, 95):.0f} ms"
            f" | {len(self.latencies)} | {self.server_cpu:.0f} % | {clients} % | {self.drops}"
            f" | {self.ready}/{self.calls} | {self.busy} | {self._stage('end_of_speech')}"
            f" | {self._stage('stt')} | {self._stage('tts')} | {self._wait()} |"
        )

    def _wait(self) -> str:
        wait = self.stages.get("wait")
        return f"≤ {wait[0]:.0f} ms" if wait else "-"

    def _stage(self, name: str) -> str:
        values = self.stages.get(name)
        if not values:
            return "-"
        return f"{percentile(values, 50):.0f} / {percentile(values, 90):.0f}"


WAIT_BOUNDS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
"""The server's wait histogram's bucket bounds, in ms (phoneactors.engines.scheduling)."""


def _wait_p90(before: dict[str, list[float]], after: dict[str, list[float]]) -> list[float]:
    """The 90th percentile (as its bucket's bound, ms) of the speech-to-text waits for a CPU
    thread between two scrapes; empty when there were none."""
    old = before.get("listen", [0.0] * (len(WAIT_BOUNDS) + 1))
    new = after.get("listen")
    if not new or new[-1] - old[-1] <= 0:
        return []
    counts = [n - o for n, o in zip(new, old, strict=True)]
    for bound, count in zip((*WAIT_BOUNDS, float("inf")), counts, strict=True):
        if count >= 0.9 * counts[-1]:
            return [float(bound)]
    return []


def run_level(
    server: Server,
    calls: int,
    seconds: float,
    clients: int,
    idle: bool,
    spread: float = 0.0,
    webhook: bool = False,
) -> Level:
    clients = clients or min(2, 1 + (calls - 1) // 100)
    warmup = max(4.0 + calls / 50, spread + 4.0)
    start = time.time() + warmup
    end = start + seconds
    shares = [calls // clients + (i < calls % clients) for i in range(clients)]
    procs = [
        subprocess.Popen(
            [
                *[sys.executable, __file__, "--client", server.ws_url, str(share)],
                *[repr(start), repr(end), str(1000 * calls + i), "1" if idle else "0"],
                *[repr(spread), "1" if webhook else "0"],
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, share in enumerate(shares)
    ]
    main_ps = psutil.Process(server.process.pid)
    server_ps = [main_ps, *main_ps.children(recursive=True)]  # with --workers: all of them
    client_ps = [psutil.Process(p.pid) for p in procs]
    time.sleep(max(0.0, start - time.time()))
    drops_before = server.drops()
    log_before = len(server.log)
    waits_before = server.inference_waits()
    for c in server_ps:
        c.cpu_percent(None)
    for c in client_ps:
        c.cpu_percent(None)
    time.sleep(max(0.0, end - time.time()))
    server_cpu = sum(c.cpu_percent(None) for c in server_ps)
    client_cpu = [c.cpu_percent(None) for c in client_ps]
    drops = server.drops() - drops_before
    stages = server.stages(log_before)
    stages["wait"] = _wait_p90(waits_before, server.inference_waits())
    latencies: list[float] = []
    ready = failed = busy = 0
    for p in procs:
        out, _ = p.communicate(timeout=60)
        data = json.loads(out.strip().splitlines()[-1])
        latencies += data["latencies"]
        ready += data["ready"]
        failed += data["failed"]
        busy += data["busy"]
    return Level(calls, latencies, server_cpu, client_cpu, drops, ready, failed, stages, busy)


def ramp(args: argparse.Namespace) -> None:
    os.environ[VOICE_ENV] = args.engines  # inherited by the client processes
    cores = len(os.sched_getaffinity(0))
    cpu_limit = args.cpu_limit * (1 if args.engines == "fake" else cores)
    server = start_server(args.engines, args.max + 10, extra=args.server_arg)
    print(f"machine: {machine()}")
    print(f"engines: {args.engines}; {args.seconds:.0f} s per level")
    print()
    header = (
        "| calls | p50 v2v | p95 v2v | turns | server CPU | client CPU | drops | ready | busy "
        "| server: end of turn p50 / p90 | stt | tts | stt wait for a thread p90 |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    reason = f"reached --max {args.max}"
    try:
        calls = args.start
        while calls <= args.max:
            level = run_level(
                server,
                calls,
                args.seconds,
                args.clients,
                idle=False,
                spread=args.spread,
                webhook=args.webhook,
            )
            print(level.row(), flush=True)
            p95 = percentile(level.latencies, 95) if level.latencies else float("inf")
            if p95 > V2V_LIMIT_MS:
                reason = f"p95 {p95:.0f} ms > {V2V_LIMIT_MS:.0f} ms at {calls} calls"
            elif level.drops:
                reason = f"{level.drops} dropped inbound frames at {calls} calls"
            elif level.server_cpu >= cpu_limit:
                reason = f"server CPU {level.server_cpu:.0f} % ≥ {cpu_limit:.0f} % at {calls} calls"
            elif level.ready + level.busy < calls:
                reason = f"only {level.ready}/{calls} calls connected"
            else:
                calls += args.step
                continue
            break
    finally:
        stop(server.process)
    print()
    print(f"stopped: {reason}")


# -- the profile --------------------------------------------------------------------------------

LIBRARIES = ["wsproto", "hypercorn", "quart_trio", "quart", "trio", "phoneactors", "json", "numpy"]
LIBRARIES += ["h11", "werkzeug", "prometheus_client", "logging", "base64", "audioop", "asyncio"]


def library(frame: str) -> str:
    match = re.search(r"\((.*):\d+\)$", frame)
    path = match.group(1) if match else frame
    parts = Path(path).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if "phoneactors" in parts:
        return "phoneactors"
    name = parts[0] if len(parts) > 1 else Path(path).stem
    name = name.removesuffix(".py").split(".")[0]
    if path.startswith("<"):
        return "launcher" if path == "<string>" else "stdlib/frozen"
    return name if name in LIBRARIES else f"other/{name}"


def profile(args: argparse.Namespace) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    calls = args.profile
    server = start_server("fake", calls + 10)
    raw = Path(tempfile.mkdtemp(prefix="phoneactors-profile-")) / "stacks.txt"
    rate = 250
    try:
        warmup = 4.0 + calls / 50
        level_thread_result: list[Level] = []
        thread = threading.Thread(
            target=lambda: level_thread_result.append(
                run_level(server, calls, args.seconds + 2, args.clients, idle=not args.talking)
            )
        )
        thread.start()
        time.sleep(warmup + 1)
        subprocess.run(
            [
                *[spy, "record", "--pid", str(server.process.pid), "--rate", str(rate)],
                *["--duration", str(int(args.seconds)), "--format", "raw", "-o", str(raw)],
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
        )
        thread.join()
    finally:
        stop(server.process)
    level = level_thread_result[0]
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        by_library[library(frames[-1])] += n
        for f in set(frames):
            cumulative[f] += n
    inbound = calls * 50 * args.seconds
    us = 1e6 / rate / inbound

    def name(frame: str) -> str:
        return f"`{frame}` [{library(frame)}]"

    print(f"machine: {machine()}")
    kind = "talking" if args.talking else "idle"
    print(
        f"{calls} {kind} fake-engine calls, py-spy {args.seconds:.0f} s at {rate} Hz:"
        f" {total} samples on CPU, server CPU {level.server_cpu:.0f} %,"
        f" {total * us:.1f} µs per inbound frame"
    )
    print()
    print("| library (own time) | µs/frame | share |")
    print("|---|---|---|")
    for lib, n in by_library.most_common():
        print(f"| {lib} | {n * us:.1f} | {100 * n / total:.0f} % |")
    for title, counts in (("own", own), ("cumulative", cumulative)):
        print()
        print(f"| top 10 by {title} time | µs/frame | share |")
        print("|---|---|---|")
        for frame, n in counts.most_common(int(os.environ.get("PROFILE_TOP", "10"))):
            print(f"| {name(frame)} | {n * us:.1f} | {100 * n / total:.0f} % |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, calls, start, end, seed, idle, spread, webhook = sys.argv[2:10]
        client_main(
            url,
            int(calls),
            float(start),
            float(end),
            int(seed),
            idle == "1",
            float(spread),
            webhook == "1",
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", choices=["fake", "real"], default="fake")
    parser.add_argument("--start", type=int, default=10)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--max", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=0, help="client processes (0: auto)")
    parser.add_argument("--cpu-limit", type=float, default=90.0, help="%% of a core: saturated")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N idle calls")
    parser.add_argument(
        "--talking", action="store_true", help="with --profile: the callers talk, as in the ramp"
    )
    parser.add_argument(
        "--spread", type=float, default=0.0, help="seconds over which callers arrive (0: 3)"
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="callers post the voice webhook first, as Twilio does; a busy answer counts as busy",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an option for the real-engine server (repeat it; e.g. --server-arg=--threads=1)",
    )
    args = parser.parse_args()
    if args.profile:
        profile(args)
    else:
        ramp(args)


if __name__ == "__main__":
    main()
