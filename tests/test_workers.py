"""``--workers N``: what the workers share, and one real server of two workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from phoneactors.call_control import CallDirectory
from phoneactors.cli.workers import thread_shares, worker_command
from phoneactors.engines.scheduling import InferenceSlots
from phoneactors.errors import ConfigurationError
from phoneactors.metrics import Metrics, merge_exposition
from phoneactors.records import CallEnded, CallStarted, list_calls
from phoneactors.switchboard import Switchboard
from phoneactors.testing import FakeSpeech, open_twilio_stream
from phoneactors.workers import (
    ENV_COUNT,
    ENV_FOLDER,
    ENV_INDEX,
    WorkerBoard,
    _exchange,
)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    supervisor = WorkerBoard.create(tmp_path, 3)
    yield tmp_path
    supervisor.close()


def test_the_board_shares_calls_waits_and_readiness(folder: Path) -> None:
    supervisor = WorkerBoard(folder, -1, 3)
    first, second, third = (WorkerBoard(folder, index, 3) for index in range(3))
    first.publish(ready=True, active=4, wait=0.1)
    second.publish(ready=False, active=2, wait=0.7)
    assert third.others_active() == 6
    assert third.others_wait() == pytest.approx(0.7)
    assert first.others_active() == 2  # not its own
    assert supervisor.ready() == [True, False, False]
    supervisor.reset(0)
    assert third.others_active() == 2
    assert supervisor.ready() == [False, False, False]
    assert first.softphone_secret() == second.softphone_secret()
    assert len(first.softphone_secret()) == 32


def test_a_worker_finds_its_board_in_the_environment(folder: Path) -> None:
    assert WorkerBoard.from_environment({}) is None
    board = WorkerBoard.from_environment({ENV_FOLDER: str(folder), ENV_INDEX: "2", ENV_COUNT: "3"})
    assert board is not None
    assert (board.index, board.count) == (2, 3)
    with pytest.raises(ConfigurationError, match="set by `phoneactors --workers N`"):
        WorkerBoard.from_environment({ENV_FOLDER: str(folder), ENV_INDEX: "x"})
    with pytest.raises(ConfigurationError, match="worker 3 of 3 does not exist"):
        WorkerBoard(folder, 3, 3)
    with pytest.raises(ConfigurationError, match="cannot open the workers' board"):
        WorkerBoard(folder / "nowhere", 0, 3)


def test_metrics_of_the_other_workers_and_stale_ones_left_out(folder: Path) -> None:
    boards = [WorkerBoard(folder, index, 3) for index in range(3)]
    boards[1].write_metrics("one")
    boards[2].write_metrics("two")
    assert sorted(boards[0].others_metrics()) == ["one", "two"]
    old = time.time() - 60
    os.utime(folder / "metrics-2.prom", (old, old))  # a worker that died a minute ago
    assert boards[0].others_metrics() == ["one"]


def test_an_answer_reaches_one_worker_once(folder: Path) -> None:
    here, there = WorkerBoard(folder, 0, 3), WorkerBoard(folder, 1, 3)
    assert here.post_answer("CA123", "machine_start")
    assert there.take_answer("CA999") is None
    assert there.take_answer("CA123") == "machine_start"
    assert here.take_answer("CA123") is None  # taken
    assert not here.post_answer("../etc/passwd", "human")  # never a path
    assert here.take_answer("../etc/passwd") is None
    here.post_answer("CA1", "human")
    old = time.time() - 7200
    os.utime(folder / "answers" / "CA1", (old, old))
    assert here.forget_old_answers() == 1
    assert here.take_answer("CA1") is None


def test_exchange_writes_metrics_and_collects_answers_for_this_workers_calls(
    folder: Path,
) -> None:
    here, there = WorkerBoard(folder, 0, 3), WorkerBoard(folder, 1, 3)
    there.post_answer("CA1", "human")
    there.post_answer("CA2", "fax")
    assert _exchange(here, "metrics text", ["CA1", "CA3"], 0) == [("CA1", "human")]
    assert there.others_metrics() == ["metrics text"]
    assert here.take_answer("CA2") == "fax"  # left for the worker that has it


def test_merged_metrics_sum_across_workers() -> None:
    one, two = Metrics(), Metrics()
    for metrics, calls in ((one, 2), (two, 3)):
        for _ in range(calls):
            metrics.observe("MZ", CallStarted("CA", "MZ", "AC", "+1", {}))
        metrics.observe("MZ", CallEnded('odd "reason"\\ here'))
    one.voice_to_voice.observe(0.3)
    two.voice_to_voice.observe(0.9)
    text = merge_exposition([one.render().decode(), two.render().decode()]).decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("phoneactors_active_calls", ())] == 3  # 2 - 1 + 3 - 1
    assert samples[("phoneactors_calls_total", (("end", "error"),))] == 2
    assert samples[("phoneactors_voice_to_voice_seconds_count", ())] == 2
    assert samples[("phoneactors_voice_to_voice_seconds_sum", ())] == pytest.approx(1.2)
    assert samples[("phoneactors_voice_to_voice_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("phoneactors_voice_to_voice_seconds_bucket", (("le", "+Inf"),))] == 2
    created = [value for (name, _), value in samples.items() if name == "phoneactors_turns_created"]
    assert created == [pytest.approx(min(created))]  # the earliest, not a sum
    types = {line for line in one.render().decode().splitlines() if line.startswith("# TYPE")}
    assert types <= set(text.splitlines())  # written as one process writes them


async def test_the_limits_hold_for_all_the_workers(folder: Path) -> None:
    slots = InferenceSlots(2)
    engines = FakeSpeech().engines()
    engines.inference = slots
    engines.ready.set()
    here, there = WorkerBoard(folder, 0, 3), WorkerBoard(folder, 1, 3)
    board = Switchboard(engines, max_calls=5, max_inference_wait=0.25, peers=here)
    assert board.refusal(new_caller=True) is None
    there.publish(ready=True, active=5, wait=0.0)
    assert board.refusal() == "all 5 lines are busy"
    there.publish(ready=True, active=2, wait=0.4)
    assert board.refusal() is None  # a stream already admitted at the webhook
    refusal = board.refusal(new_caller=True)
    assert refusal is not None
    assert "inferences wait 400 ms" in refusal
    with board.line():
        assert there.others_active() == 1  # published at once
    assert there.others_active() == 0


def test_call_directory_lists_its_calls() -> None:
    directory = CallDirectory()
    assert not directory.has("CA1")
    directory.enter("CA1", object())  # type: ignore[arg-type]
    assert directory.has("CA1")
    assert directory.call_sids() == ["CA1"]


def test_worker_command_keeps_the_options_and_adds_the_port_and_threads() -> None:
    command = worker_command(["--workers", "2", "--port", "0", "--max-calls", "9"], 8123, 1)
    assert command[:4] == [sys.executable, "-m", "phoneactors", "serve"]
    assert command[4:] == [
        "--workers",
        "2",
        "--port",
        "0",
        "--max-calls",
        "9",
        "--port",
        "8123",
        "--threads",
        "1",
    ]
    assert "--threads" not in worker_command([], 8123, None)  # the user chose


# --------------------------------------------------------------------------------------------
# A real server of two workers

LISTENING = re.compile(
    r"phoneactors listening on http://127\.0\.0\.1:(\d+) "
    r"\(webhook POST /, stream /stream; 2 workers\)\n"
)


def _metric(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


@pytest.mark.e2e
async def test_two_workers_share_the_port_the_limits_the_metrics_and_the_records(
    tmp_path: Path,
) -> None:
    records = tmp_path / "calls.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHONEACTORS_", "TWILIO_"))}
    argv = ["--workers", "2", "--port", "0", "--max-calls", "3", "--records", str(records)]
    server = subprocess.Popen(  # noqa: ASYNC220 (read line by line, from a thread)
        [sys.executable, "-m", "phoneactors", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = await trio.to_thread.run_sync(server.stdout.readline)
        match = LISTENING.fullmatch(line)
        if not match:
            server.kill()
            _, err = await trio.to_thread.run_sync(server.communicate)
            pytest.fail(f"no listening line ({line!r}); the server said:\n{err}")
        base = f"http://127.0.0.1:{match[1]}"
        stream = base.replace("http", "ws") + "/stream"
        await _serve_and_check(server, base, stream)  # ends with a SIGTERM
        _, err = await trio.to_thread.run_sync(lambda: server.communicate(timeout=60))
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "worker 0 ended (SIGKILL); starting it again in 1 s" in err, err
    assert "all workers have ended" in err
    streams = list_calls(records)
    assert len(streams) == 5
    assert all(row["ended_at"] is not None for row in streams), streams


async def _serve_and_check(server: subprocess.Popen[str], base: str, stream: str) -> None:
    async with httpx.AsyncClient() as client:
        workers = set()
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            async with httpx.AsyncClient() as fresh:
                workers.add((await fresh.get(base + "/healthz")).json()["worker"])
        assert workers == {0, 1}

        async def metric_reaches(name: str, value: float) -> None:
            with trio.fail_after(15):  # each worker shares its metrics every second
                while True:  # a new connection each time: an idle one may be closed as it is reused
                    async with httpx.AsyncClient() as fresh:
                        if _metric((await fresh.get(base + "/metrics")).text, name) == value:
                            return
                    await trio.sleep(0.1)

        async with (
            open_twilio_stream(stream) as one,
            open_twilio_stream(stream) as two,
            open_twilio_stream(stream) as three,
        ):
            await metric_reaches("phoneactors_active_calls", 3)
            busy = await client.post(base + "/", data={"CallSid": "CA4"})
            assert "all our lines are busy" in busy.text
            upgrade = {  # a plain client: trio-websocket leaks its socket when refused
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            }
            refused = await client.get(base + "/stream", headers=upgrade)
            assert refused.status_code == 503
            assert refused.text == "all 3 lines are busy"
            assert len({one.call_sid, two.call_sid, three.call_sid}) == 3
        await metric_reaches("phoneactors_calls_total", 3)

        children = psutil.Process(server.pid).children()
        victim = next(
            child for child in children if child.environ().get("PHONEACTORS_WORKER_INDEX") == "0"
        )
        victim.kill()
        workers = set()
        with trio.fail_after(60):
            while workers != {0, 1}:
                async with httpx.AsyncClient() as fresh:
                    response = await fresh.get(base + "/healthz")
                    if response.status_code == 200:
                        workers.add(response.json()["worker"])
                await trio.sleep(0.05)

        async with open_twilio_stream(stream) as last, open_twilio_stream(stream):
            await metric_reaches("phoneactors_active_calls", 2)
            server.send_signal(signal.SIGTERM)  # drains: the calls go on
            await trio.sleep(1.0)
            assert not last.closed.is_set()
            assert server.poll() is None


def test_a_worker_that_ended_leaves_its_counts_not_its_gauges(folder: Path) -> None:
    supervisor, here, gone = (WorkerBoard(folder, index, 3) for index in (-1, 0, 1))
    metrics = Metrics()
    metrics.observe("MZ", CallStarted("CA", "MZ", "AC", "+1", {}))  # a call in progress
    metrics.turns.inc(7)
    gone.write_metrics(metrics.render().decode())
    supervisor.retire(1)
    supervisor.retire(1)  # nothing left to retire: no double count
    text = merge_exposition([Metrics().render().decode(), *here.others_metrics()]).decode()
    assert _metric(text, "phoneactors_turns_total") == 7  # counters do not go down
    assert _metric(text, "phoneactors_active_calls") == 0  # its calls ended with it
    assert not (folder / "metrics-1.prom").exists()


def test_the_cores_are_split_between_the_workers() -> None:
    assert thread_shares(2, 2) == [1, 1]
    assert thread_shares(3, 2) == [2, 1]  # no core left over
    assert thread_shares(6, 4) == [2, 2, 1, 1]
    assert thread_shares(2, 4) == [1, 1, 1, 1]  # more workers than cores: one each
