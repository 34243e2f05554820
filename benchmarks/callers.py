"""The callers of the black-box benchmarks: their voices, and how loud they are on the line.

``hibari``, ``piper`` and ``espeak:VOICE`` (an espeak-ng voice, e.g. ``espeak:en-us+m3``);
``hibari@SPEED`` and ``piper@LENGTH`` set the pace. A caller may speak quieter or louder
than the voice does (``gain_db``): a caller far from the phone's microphone, or one who
shouts into it (clipped at full scale, as a phone would).
"""

from __future__ import annotations

import shutil

import numpy as np
import trio
from backchannels import espeak
from voice_to_voice import voiced_span

from phoneactors.audio import PCM, ulaw_decode, ulaw_encode
from phoneactors.engines import TextToSpeech


class EspeakVoice:
    """An espeak-ng voice (``espeak:en-us+m3``) as a caller: robotic, with prosody and timing
    unlike the neural voices'. Needs ``espeak-ng`` on the PATH."""

    def __init__(self, voice: str) -> None:
        self.voice = voice
        self.name = f"espeak:{voice}"

    async def load(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise SystemExit(f"{self.name}: espeak-ng is not on the PATH (apt-get install it)")

    async def synthesize(self, text: str) -> PCM:
        return await trio.to_thread.run_sync(espeak, self.voice, text)


def louder(audio: PCM, gain_db: float) -> PCM:
    """``audio`` ``gain_db`` louder (negative: quieter), clipped at full scale."""
    if gain_db == 0.0:
        return audio
    scaled = audio.astype(np.float64) * 10.0 ** (gain_db / 20.0)
    return np.clip(np.round(scaled), -32768, 32767).astype(np.int16)


async def make_voice(name: str) -> TextToSpeech:
    """A caller's voice: ``hibari``, ``piper`` or ``espeak:VOICE``; ``hibari@SPEED`` and
    ``piper@LENGTH`` set hibari's pace (default 0.95) or Piper's length scale (over 1:
    slower)."""
    limiter = trio.CapacityLimiter(1)
    name, _, pace = name.partition("@")
    voice: TextToSpeech
    if name.startswith("espeak:"):
        voice = EspeakVoice(name.removeprefix("espeak:"))
    elif name == "piper":
        from phoneactors.engines.piper import PiperTTS

        voice = PiperTTS(limiter=limiter, length_scale=float(pace) if pace else None)
    elif name == "hibari":
        from phoneactors.engines.hibari import HibariTTS

        voice = HibariTTS(limiter=limiter, speed=float(pace) if pace else 0.95)
    else:
        raise SystemExit(f"unknown voice {name!r}: hibari, piper or espeak:VOICE")
    await voice.load()
    return voice


def dbfs(audio: PCM) -> float:
    """The RMS level of ``audio`` in dBFS."""
    samples = audio.astype(np.float64)
    return 20.0 * float(np.log10(np.sqrt(np.mean(samples * samples)) / 32768.0))


async def speak(voice: TextToSpeech, text: str, gain_db: float = 0.0) -> PCM:
    """``text`` in ``voice``, through μ-law, from its first to its last voiced frame (at the
    voice's own level, so a quieter caller says the same sounds), ``gain_db`` louder."""
    audio = await voice.synthesize(text)
    line = ulaw_decode(ulaw_encode(audio))
    first, last = voiced_span(line)
    if gain_db:
        line = ulaw_decode(ulaw_encode(louder(audio, gain_db)))
    return line[first:last]
