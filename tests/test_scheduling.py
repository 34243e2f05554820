"""Inference slots: CPU threads for inference, handed out by priority, with every wait measured;
and what the server makes of the waits (metrics, refusing new callers while they are long)."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.lowlevel
from trio.testing import MockClock

from phoneactors.engines import Engines, run_inference
from phoneactors.engines.faster_whisper import FasterWhisperSTT
from phoneactors.engines.scheduling import InferenceSlots, Priority, WaitStats
from phoneactors.errors import ConfigurationError
from phoneactors.metrics import Metrics
from phoneactors.server import ServerConfig
from phoneactors.switchboard import Switchboard
from phoneactors.testing import FakeSpeech


async def _hold(
    slots: InferenceSlots, cost: int, priority: Priority, log: list[str], name: str, seconds: float
) -> None:
    claim = slots.claim(cost, priority)
    await claim.acquire_on_behalf_of(name)
    log.append(name)
    await trio.sleep(seconds)
    claim.release_on_behalf_of(name)


async def test_waiting_inferences_go_by_priority_then_arrival(autojump_clock: MockClock) -> None:
    slots = InferenceSlots(1)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "running", 1.0)
        await trio.sleep(0.1)
        for name, priority in [
            ("prepare", Priority.PREPARE),
            ("listen 1", Priority.LISTEN),
            ("speak", Priority.SPEAK),
            ("listen 2", Priority.LISTEN),
        ]:
            nursery.start_soon(_hold, slots, 1, priority, order, name, 1.0)
            await trio.sleep(0.01)
        assert slots.waiting == 4
    assert order == ["running", "speak", "listen 1", "listen 2", "prepare"]
    assert slots.in_use == slots.running == slots.waiting == 0
    speak = slots.waits[Priority.SPEAK]
    assert speak.count == 1
    assert speak.total_s == pytest.approx(0.88)  # queued at 0.12 s; "running" ended at 1.0 s


async def test_an_inference_claims_its_threads_and_the_head_of_the_queue_waits_for_them(
    autojump_clock: MockClock,
) -> None:
    slots = InferenceSlots(2)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "one thread", 1.0)
        await trio.sleep(0.1)
        nursery.start_soon(_hold, slots, 2, Priority.LISTEN, order, "two threads", 1.0)
        await trio.sleep(0.1)
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "another", 1.0)
        await trio.sleep(0.1)
        assert (slots.in_use, slots.waiting) == (1, 2)  # a free thread, but the head needs two
    assert order == ["one thread", "two threads", "another"]
    assert slots.claim(5).cost == 2  # never more than there are
    assert slots.claim(0).cost == 1


async def test_an_urgent_inference_that_fits_starts_at_once_past_a_costly_head(
    autojump_clock: MockClock,
) -> None:
    slots = InferenceSlots(4)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, f"stt {i}", 1.0)
        await trio.sleep(0.1)
        nursery.start_soon(_hold, slots, 2, Priority.LISTEN, order, "two threads", 1.0)
        await trio.sleep(0.1)
        nursery.start_soon(_hold, slots, 1, Priority.SPEAK, order, "speak", 0.1)
        await trio.sleep(0.01)
        assert "speak" in order  # one thread was free, and it goes first: it starts now
    assert slots.waits[Priority.SPEAK].total_s == 0.0


async def test_a_cancelled_waiter_leaves_the_queue_and_lets_the_next_in(
    autojump_clock: MockClock,
) -> None:
    slots = InferenceSlots(1)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "running", 1.0)
        await trio.sleep(0.1)
        with trio.move_on_after(0.2):
            await _hold(slots, 1, Priority.SPEAK, order, "given up", 1.0)
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "next", 1.0)
        await trio.sleep(0.1)
        assert slots.waiting == 1
    assert order == ["running", "next"]
    assert slots.waits[Priority.SPEAK].count == 0  # it never got threads
    assert slots.abandoned == {Priority.SPEAK: 1, Priority.LISTEN: 0, Priority.PREPARE: 0}
    metrics = Metrics()
    metrics.watch_inference(slots)
    sample = metrics.registry.get_sample_value
    assert sample("phoneactors_inference_abandoned_total", {"priority": "speak"}) == 1
    assert sample("phoneactors_inference_abandoned_total", {"priority": "listen"}) == 0


async def test_recent_wait_is_the_90th_percentile_of_the_last_seconds_and_of_those_waiting(
    autojump_clock: MockClock,
) -> None:
    slots = InferenceSlots(1)
    assert slots.recent_wait() == 0.0
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "long", 3.0)
        await trio.sleep(0.5)
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "waiting", 0.1)
        await trio.sleep(1.0)
        assert slots.recent_wait() == pytest.approx(1.0)  # still waiting, for 1 s so far
    assert slots.recent_wait() == 0.0  # one slow wait, over: too few to tell
    async with trio.open_nursery() as nursery:
        for i in range(9):  # nine more, each waiting 0.1 s longer than the one before
            nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, f"short {i}", 0.1)
            await trio.lowlevel.checkpoint()
    waits = sorted([0.0, 2.5] + [0.1 * i for i in range(9)])
    assert slots.recent_wait() == pytest.approx(waits[int(0.9 * len(waits))])
    await trio.sleep(6.0)
    assert slots.recent_wait() == 0.0  # forgotten after 5 s
    loading = slots.claim(1, Priority.PREPARE)
    await loading.acquire_on_behalf_of("load")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.PREPARE, order, "warm-up", 0.1)
        await trio.sleep(3.0)
        assert slots.recent_wait() == 0.0  # loading models is no sign of load
        loading.release_on_behalf_of("load")


async def test_an_abandoned_inference_keeps_its_threads_until_its_worker_is_done() -> None:
    slots = InferenceSlots(1)
    release = threading.Event()
    abandoned = trio.CancelScope()
    returned = trio.Event()
    done = trio.Event()

    async def first() -> None:
        with abandoned:
            await run_inference(release.wait, limiter=slots, priority=Priority.LISTEN)
        returned.set()

    async def second() -> None:
        assert await run_inference(lambda: 42, limiter=slots, priority=Priority.SPEAK) == 42
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        assert slots.in_use == 1  # its worker is running
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert slots.waiting == 1
        abandoned.cancel()
        await returned.wait()  # the first returned at once...
        assert slots.in_use == 1  # ...but its worker still holds the thread
        assert not done.is_set()
        release.set()  # the worker ends: its thread goes to the second
    assert done.is_set()
    assert slots.in_use == 0


def test_wait_stats_are_a_cumulative_histogram() -> None:
    stats = WaitStats()
    for seconds in (0.0, 0.02, 0.3, 7.0):
        stats.add(seconds)
    assert stats.count == 4
    assert stats.total_s == pytest.approx(7.32)
    assert stats.buckets == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]  # ≤ 5 ms … ≤ 5 s, then all


@pytest.mark.parametrize("total", [0, -1, 1.5, True])
def test_slots_need_a_whole_number_of_threads(total: object) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        InferenceSlots(total)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# What the server makes of it: metrics, and new callers refused while the engines are behind


def _engines(slots: InferenceSlots) -> Engines:
    speech = FakeSpeech()
    engines = speech.engines()
    engines.inference = slots
    engines.ready.set()
    return engines


async def test_new_callers_are_refused_while_inference_waits_too_long(
    autojump_clock: MockClock,
) -> None:
    slots = InferenceSlots(1)
    board = Switchboard(_engines(slots), max_calls=10, max_inference_wait=0.25)
    assert board.refusal(new_caller=True) is None
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "running", 2.0)
        await trio.sleep(0.01)
        nursery.start_soon(_hold, slots, 1, Priority.LISTEN, order, "waiting", 0.1)
        await trio.sleep(0.2)
        assert board.refusal(new_caller=True) is None  # 0.2 s: not yet
        await trio.sleep(0.1)
        refusal = board.refusal(new_caller=True)
        assert refusal is not None
        assert "inferences wait 300 ms for a CPU thread (over 250 ms)" in refusal
        assert board.refusal() is None  # a stream Twilio already connected is still taken
    await trio.sleep(5.1)  # the long wait is 5 s old: forgotten
    assert board.refusal(new_caller=True) is None
    never = Switchboard(_engines(slots), max_calls=10, max_inference_wait=None)
    assert never.refusal(new_caller=True) is None


async def test_metrics_report_the_waits_for_inference_threads(autojump_clock: MockClock) -> None:
    slots = InferenceSlots(2)
    metrics = Metrics()
    metrics.watch_inference(slots)
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hold, slots, 2, Priority.LISTEN, order, "transcribe", 0.3)
        await trio.sleep(0.1)
        nursery.start_soon(_hold, slots, 1, Priority.SPEAK, order, "speak", 0.1)
        await trio.sleep(0.05)
        assert metrics.registry.get_sample_value("phoneactors_inference_waiting") == 1
        assert metrics.registry.get_sample_value("phoneactors_inference_threads_in_use") == 2
    assert metrics.registry.get_sample_value("phoneactors_inference_threads") == 2
    speak = {"priority": "speak"}
    count = metrics.registry.get_sample_value("phoneactors_inference_wait_seconds_count", speak)
    total = metrics.registry.get_sample_value("phoneactors_inference_wait_seconds_sum", speak)
    assert (count, total) == (1, pytest.approx(0.2))
    under_a_quarter = {"priority": "speak", "le": "0.25"}
    assert (
        metrics.registry.get_sample_value(
            "phoneactors_inference_wait_seconds_bucket", under_a_quarter
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "phoneactors_inference_wait_seconds_bucket", {"priority": "speak", "le": "0.1"}
        )
        == 0
    )


@pytest.mark.parametrize("wait", [0, -5, float("nan"), "300"])
def test_the_servers_wait_bound_must_be_positive(wait: object) -> None:
    with pytest.raises(ConfigurationError, match="max_inference_wait_ms must be"):
        ServerConfig(max_inference_wait_ms=wait)  # type: ignore[arg-type]
    assert ServerConfig(max_inference_wait_ms=None).max_inference_wait_ms is None


def test_faster_whisper_runs_one_thread_per_transcription_as_many_as_there_are_threads() -> None:
    stt = FasterWhisperSTT(limiter=InferenceSlots(3))
    assert (stt.cpu_threads, stt.workers) == (1, 3)
    assert FasterWhisperSTT(limiter=trio.CapacityLimiter(2)).workers == 2
    explicit = FasterWhisperSTT(limiter=InferenceSlots(4), cpu_threads=2, workers=1)
    assert (explicit.cpu_threads, explicit.workers) == (2, 1)
    with pytest.raises(ConfigurationError, match="workers must be at least 1"):
        FasterWhisperSTT(limiter=InferenceSlots(1), workers=0)


def test_one_blas_thread_limits_numpys_blas_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from phoneactors.engines.scheduling import BLAS_THREAD_VARIABLES, one_blas_thread

    for name in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy here has no BLAS that threadpoolctl can see")

    def threads() -> list[int]:
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    with threadpool_limits(2, user_api="blas"):  # restored afterwards, for the other tests
        before = threads()
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        assert one_blas_thread() is False
        assert threads() == before
        monkeypatch.delenv("OPENBLAS_NUM_THREADS")
        assert one_blas_thread() is True
        assert set(threads()) == {1}
