"""End to end: the real server on port 0, a real websocket speaking Twilio JSON, real engines.

The caller is :class:`phoneactors.testing.FakeTwilio` over a real websocket, in real time, with
real synthesized speech; the bot's audio that "played" is transcribed back with the real STT.
"""

from __future__ import annotations

import numpy as np
import pytest
import trio

from phoneactors import CallSettings, Engines, Parrot
from phoneactors.engines.faster_whisper import FasterWhisperSTT
from phoneactors.engines.hibari import HibariTTS
from phoneactors.engines.webrtc import WebRtcVad
from phoneactors.server import ServerConfig, serve
from phoneactors.testing import FakeTwilio, open_twilio_stream
from phoneactors.wer import word_error_rate

pytestmark = pytest.mark.e2e


def played_since(fake: FakeTwilio, index: int) -> np.ndarray:
    audio = [p.audio for p in fake.played[index:]]
    return np.concatenate(audio) if audio else np.zeros(0, dtype=np.int16)


async def test_a_real_call_greeting_turn_and_barge_in() -> None:
    limiter = trio.CapacityLimiter(2)
    stt = FasterWhisperSTT(limiter=limiter)
    engines = Engines(vad=WebRtcVad(), stt=stt, tts=HibariTTS(limiter=limiter))
    caller_voice = HibariTTS(limiter=limiter, speed=0.9)
    config = ServerConfig(port=0, call_settings=CallSettings())
    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve, Parrot, engines, config)
            await engines.ready.wait()
            await caller_voice.load()
            url = f"ws://{host}:{port}/stream"
            async with open_twilio_stream(url, voice=caller_voice) as fake:
                # 1. The greeting plays and says what it should.
                await fake.wait_for_bot_to_finish()
                greeting = (await stt.transcribe(fake.bot_audio)).text
                assert word_error_rate(Parrot.greeting or "", greeting) <= 0.2, greeting

                # 2. One turn: the reply transcribes back to the expected words.
                said = "What time does the library open tomorrow morning?"
                before = len(fake.played)
                await fake.say(said)
                await fake.wait_for_bot_to_finish()
                reply = (await stt.transcribe(played_since(fake, before))).text
                expected = f"You said {said}"
                assert word_error_rate(expected, reply) <= 0.2, reply
                assert not fake.clears

                # 3. Barge-in: talking over a long reply clears it, and nothing of it follows.
                long = (
                    "Please tell me everything about the opening hours of every branch "
                    "of the public library in the whole city, including the holidays."
                )
                before = len(fake.played)
                await fake.say(long)
                await fake.wait_for(lambda: len(fake.played) > before + 10)  # a second in
                interrupted_at = trio.current_time()
                await fake.say("Stop, stop.", wait=False)
                await fake.wait_for(lambda: bool(fake.clears))
                assert fake.clears[0] - interrupted_at < 1.0
                await trio.sleep(1.0)
                assert fake.stale_audio_after_clear() == 0
                heard = len(played_since(fake, before)) / 8000
                assert heard < 2.5  # the long reply (~8 s) was cut short
            nursery.cancel_scope.cancel()
