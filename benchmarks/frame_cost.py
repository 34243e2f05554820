"""CPU time per inbound 20 ms media frame, and memory per idle call.

    python benchmarks/frame_cost.py [--frames 50000] [--calls 50] [--frames-only]

* **frame cost**: what the receiver and the VAD do for each frame Twilio sends — parse the JSON,
  decode base64, μ-law to PCM, frame, WebRTC VAD, the noise gate, segmenter — measured
  in-process with ``time.process_time`` over many frames of real speech and silence.
* **memory per idle call**: a real server in a subprocess; ``--calls`` websocket calls that
  send silence at the real 50 frames a second; resident memory before and after, divided.
  ``--frames-only`` skips it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import psutil
import trio
from harness import machine, running_server

from phoneactors import twilio
from phoneactors.audio import Framer, ulaw_decode, ulaw_encode
from phoneactors.engines.hibari import HibariTTS
from phoneactors.engines.webrtc import WebRtcVad
from phoneactors.noise import NoiseGate
from phoneactors.segmenter import SpeechSegmenter
from phoneactors.testing import open_twilio_stream


async def speech_frames() -> list[bytes]:
    voice = HibariTTS(limiter=trio.CapacityLimiter(1))
    await voice.load()
    audio = await voice.synthesize("Hello, I would like to know when the shop opens tomorrow.")
    audio = np.concatenate([audio, np.zeros(8000, dtype=np.int16)])  # and a second of silence
    data = ulaw_encode(audio[: len(audio) // 160 * 160])
    return [data[i : i + 160] for i in range(0, len(data), 160)]


def frame_cost(frames: int, payloads: list[bytes]) -> float:
    """Microseconds of CPU per frame for the whole inbound path."""
    messages = [
        twilio.encode_inbound(
            twilio.Media(i + 1, "MZ1", "inbound", i + 1, i * 20, payloads[i % len(payloads)])
        )
        for i in range(len(payloads))
    ]
    detector = WebRtcVad().new_detector()
    gate = NoiseGate()
    segmenter = SpeechSegmenter()
    framer = Framer()
    started = time.process_time()
    for i in range(frames):
        event = twilio.parse_event(messages[i % len(messages)])
        assert isinstance(event, twilio.Media)
        for frame in framer.push(ulaw_decode(event.payload)):
            voiced = detector.is_speech(frame)  # as the call's VAD actor does
            over = gate.measure(frame)
            segmenter.feed(frame, voiced, clear=voiced and over, over=over)
    return (time.process_time() - started) / frames * 1e6


async def idle_calls(url: str, pid: int, calls: int) -> tuple[float, float]:
    process = psutil.Process(pid)
    before = process.memory_info().rss
    async with trio.open_nursery() as nursery:
        ready = trio.Semaphore(0)
        done = trio.Event()

        async def call() -> None:
            async with open_twilio_stream(url) as fake:
                await fake.wait_for_bot_to_finish()  # the greeting, then silence
                ready.release()
                await done.wait()

        for _ in range(calls):
            nursery.start_soon(call)
        for _ in range(calls):
            await ready.acquire()
        await trio.sleep(2)
        after = process.memory_info().rss
        cpu = process.cpu_percent(interval=None)
        await trio.sleep(3)
        cpu = process.cpu_percent(interval=None)
        done.set()
    return (after - before) / calls / 1e6, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument(
        "--frames-only", action="store_true", help="measure the frame cost, skip the idle calls"
    )
    args = parser.parse_args()
    payloads = trio.run(speech_frames)
    costs = [frame_cost(args.frames, payloads) for _ in range(5)]
    results: dict[str, object] = {"frame_us": costs}
    if not args.frames_only:
        with running_server(  # idle calls stay idle: no "are you still there?"
            "--log-level", "WARNING", "--max-calls", str(args.calls + 10), "--idle-timeout", "0"
        ) as server:
            per_call, cpu = trio.run(idle_calls, server.ws_url, server.process.pid, args.calls)
        results.update(mb_per_call=per_call, cpu_percent=cpu)
    print(f"machine: {machine()}")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        "| CPU per inbound frame (parse, base64, μ-law, VAD, noise gate, segmenter), "
        f"median of 5 | "
        f"{sorted(costs)[2]:.1f} µs |"
    )
    if not args.frames_only:
        print(f"| memory per idle call ({args.calls} calls sending silence) | {per_call:.2f} MB |")
        print(f"| server CPU with {args.calls} idle calls (100 % = one core) | {cpu:.0f} % |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
