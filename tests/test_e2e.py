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
from phoneactors.sounds import cough
from phoneactors.testing import FakeTwilio, load_caller_voice, open_twilio_stream
from phoneactors.twilio import SendMark
from phoneactors.wer import word_error_rate

pytestmark = pytest.mark.e2e


def played_since(fake: FakeTwilio, index: int) -> np.ndarray:
    audio = [p.audio for p in fake.played[index:]]
    return np.concatenate(audio) if audio else np.zeros(0, dtype=np.int16)


async def test_a_real_call_greeting_turn_barge_in_and_a_cough() -> None:
    limiter = trio.CapacityLimiter(2)
    stt = FasterWhisperSTT(limiter=limiter)
    engines = Engines(vad=WebRtcVad(), stt=stt, tts=HibariTTS(limiter=limiter))
    config = ServerConfig(port=0, call_settings=CallSettings())
    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve, Parrot, engines, config)
            await engines.ready.wait()
            caller_voice = await load_caller_voice(speed=0.9)
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
                await fake.wait_for_bot_to_finish()  # the answer to "Stop, stop."

                # 4. A cough over a reply pauses it; it plays on, and the cough is not answered.
                question = "Please read me the opening hours of every branch in the whole city."
                before = len(fake.played)
                await fake.say(question)
                await fake.wait_for(lambda: len(fake.played) > before + 10)
                clears, sent = len(fake.clears), len(fake.outbound)
                await fake.play(cough(np.random.default_rng(1)))
                await fake.wait_for_bot_to_finish(quiet=1.0)
                assert len(fake.clears) > clears  # paused (once a burst: a cough may be two)
                assert any(p.start > fake.clears[-1] for p in fake.played[before:])
                marks = [e for _, e in fake.outbound[sent:] if isinstance(e, SendMark)]
                assert len({mark.name.rpartition(".")[0] for mark in marks}) == 1  # no new reply
                heard_text = (await stt.transcribe(played_since(fake, before))).text
                # The whole reply, a word or two of it twice (from the word that was cut).
                assert word_error_rate(f"You said {question}", heard_text) <= 0.3, heard_text
            nursery.cancel_scope.cancel()
