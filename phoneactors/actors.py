"""The actors of one call: small ``async def`` functions, each doing one job.

They are joined by memory channels that :mod:`phoneactors.call` opens; each actor closes the
channels it sends on when it returns, so the next one sees end-of-channel. None of them catch
``trio.Cancelled``: barge-in and hang-up are cancellation. The transcriber is in
:mod:`phoneactors.transcriber`; what a call logs and counts, in :mod:`phoneactors.call_log`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from inspect import isawaitable
from typing import Any

import trio

from . import twilio
from .audio import SAMPLE_RATE, Framer, ulaw_decode, ulaw_encode
from .call_log import CallLog, CallStats, worth_logging
from .conversation import Clip, Reply
from .engines import (
    TextToSpeech,
    VoiceActivityDetector,
)
from .errors import EngineError, ProtocolError, ReplyError, SocketClosed
from .messages import (
    KeyPressed,
    Sentence,
    SpeechStarted,
    TurnEvent,
    TurnJudged,
    Utterance,
)
from .noise import NoiseGate
from .playback import Pacer, Playback, ReplyAudio, ReplyLedger, rewind, trim_silence
from .segmenter import (
    SegmenterSettings,
    SpeechBegan,
    SpeechEnded,
    SpeechPaused,
    SpeechSegmenter,
)
from .sentences import SentenceSplitter
from .timing import TurnTiming
from .transport import CallSocket

__all__ = [
    "detect_speech",
    "generate_sentences",
    "play_reply",
    "receive_twilio",
    "synthesize_sentences",
    "transmit",
]


async def receive_twilio(
    socket: CallSocket,
    frames_out: trio.MemorySendChannel[Any],
    turns_out: trio.MemorySendChannel[TurnEvent],
    *,
    stream_sid: str,
    on_mark: Callable[[str], object],
    stats: CallStats,
    log: CallLog,
    max_bad_messages: int,
    max_payload_bytes: int,
) -> str:
    """Read the socket until Twilio says ``stop`` or the socket closes; return why it ended.

    Never blocks on its outputs (Twilio sends 50 frames a second whatever we do): a full frame
    channel drops the frame, counted and logged. Malformed messages are skipped with a counted
    warning; more than ``max_bad_messages`` of them end the call with :class:`ProtocolError`.
    """
    framer = Framer()
    before_start = (twilio.Start, twilio.Connected)  # a tuple: no union built per message
    async with frames_out, turns_out:
        while True:
            try:
                message = await socket.receive()
            except SocketClosed:
                return "socket closed"
            try:
                event = twilio.parse_event(message, max_payload_bytes=max_payload_bytes)
                if isinstance(event, before_start):
                    raise ProtocolError(f"unexpected {type(event).__name__.lower()} after start")
                if event.stream_sid != stream_sid:
                    raise ProtocolError(
                        f"streamSid: expected {stream_sid!r}, got {event.stream_sid!r}"
                    )
            except ProtocolError as exc:
                stats.bad_messages += 1
                if stats.bad_messages > max_bad_messages:
                    raise ProtocolError(
                        f"too many malformed messages ({stats.bad_messages}); last: {exc}"
                    ) from exc
                if worth_logging(stats.bad_messages):
                    log.warning("skipped malformed message #%d: %s", stats.bad_messages, exc)
                continue
            match event:
                case twilio.Media(payload=payload):
                    for frame in framer.push(ulaw_decode(payload)):
                        stats.frames_received += 1
                        try:
                            frames_out.send_nowait(frame)
                        except trio.WouldBlock:
                            stats.frames_dropped += 1
                            if worth_logging(stats.frames_dropped):
                                log.warning(
                                    "dropped inbound frame (VAD behind), %d so far",
                                    stats.frames_dropped,
                                )
                case twilio.Mark(name=name):
                    on_mark(name)
                case twilio.Dtmf(digit=digit):
                    try:
                        turns_out.send_nowait(KeyPressed(digit))
                    except trio.WouldBlock:
                        stats.dtmf_dropped += 1
                        log.warning("dropped DTMF %r: responder behind", digit)
                case twilio.Stop():
                    return "caller hung up"


async def detect_speech(
    inbox: trio.MemoryReceiveChannel[Any],
    turns_out: trio.MemorySendChannel[TurnEvent],
    utterances_out: trio.MemorySendChannel[Utterance],
    *,
    detector: VoiceActivityDetector,
    settings: SegmenterSettings,
    gate: NoiseGate | None = None,
    replying: Callable[[], bool] = lambda: False,
) -> None:
    """Run the VAD over each 20 ms frame; announce speech starts, hand on the audio so far at
    each short pause (for early transcription) and whole utterances when the turn ends.

    ``inbox`` brings the caller's frames and, from the transcriber, :class:`TurnJudged`: how the
    words at a pause read, which sets how long a silence ends the turn. ``gate`` (the line's
    noise floor) says which frames are over the line's noise: speech starts on the frames
    the VAD calls speech or the gate hears once a few are both, and within an utterance only
    frames that are both count. ``replying`` says whether the bot is replying: sound faint
    beside the caller's own level does not start an utterance then (see
    :meth:`SpeechSegmenter.feed`).
    """
    segmenter = SpeechSegmenter(settings)
    event: SpeechBegan | SpeechPaused | SpeechEnded | None
    async with inbox, turns_out, utterances_out:
        async for item in inbox:
            if type(item) is TurnJudged:
                event = segmenter.judged(item.pause, item.complete)
            else:
                voiced = detector.is_speech(item)
                over = gate.measure(item) if gate is not None else voiced
                event = segmenter.feed(
                    item, voiced, replying=replying(), clear=voiced and over, over=over
                )
            if event is None:
                continue
            now = trio.current_time()
            match event:
                case SpeechBegan(began_ms=began_ms):
                    await turns_out.send(SpeechStarted(at=now, began_at=now - began_ms / 1000))
                case SpeechPaused(audio=audio, quiet_ms=quiet_ms):
                    speech_ended = now - quiet_ms / 1000
                    await utterances_out.send(
                        Utterance(
                            audio,
                            final=False,
                            speech_ended_at=speech_ended,
                            ended_at=now,
                            pause=event.number,
                        )
                    )
                case SpeechEnded(audio=audio, silence_ms=silence_ms):
                    await utterances_out.send(
                        Utterance(
                            audio,
                            final=True,
                            speech_ended_at=now - silence_ms / 1000,
                            ended_at=now,
                            continues_pause=event.continues_pause,
                            pause=event.pause,
                        )
                    )


async def generate_sentences(
    make_reply: Callable[[], Reply],
    sentences_out: trio.MemorySendChannel[Sentence],
    *,
    ledger: ReplyLedger,
    time_limit: float,
    apology: str,
    stats: CallStats,
    log: CallLog,
    timing: TurnTiming | None = None,
) -> None:
    """Run the user's reply and pass it on sentence by sentence as soon as each is complete.

    This is the boundary with user code: an exception, a timeout (``time_limit`` seconds for the
    whole reply) or a wrong type is logged with the call sid and replaced by ``apology``.
    """

    async def emit(text: str) -> None:
        if timing is not None and timing.first_sentence is None:
            timing.first_sentence = trio.current_time()
        await sentences_out.send(Sentence(ledger.add_sentence(text), text))

    async with sentences_out:
        splitter = SentenceSplitter()
        try:
            with trio.fail_after(time_limit):
                result: Any = make_reply()
                if isawaitable(result):
                    result = await result
                if isinstance(result, str):
                    for sentence in splitter.feed(result):
                        await emit(sentence)
                elif isinstance(result, Clip):
                    if timing is not None and timing.first_sentence is None:
                        timing.first_sentence = trio.current_time()
                    index = ledger.add_sentence(result.text)
                    await sentences_out.send(Sentence(index, result.text, audio=result.audio))
                elif hasattr(result, "__aiter__"):
                    async with aclosing(result) as chunks:
                        async for chunk in chunks:
                            if not isinstance(chunk, str):
                                raise ReplyError(
                                    f"reply yielded {type(chunk).__name__}, expected str"
                                )
                            for sentence in splitter.feed(chunk):
                                await emit(sentence)
                elif result is not None:
                    raise ReplyError(
                        f"reply returned {type(result).__name__}, expected str, a Clip, "
                        "an async iterator of str, or None"
                    )
        except trio.TooSlowError:
            stats.reply_errors += 1
            log.failed("reply", f"took longer than {time_limit:g} s; apologising")
            splitter = SentenceSplitter()  # drop the unfinished sentence
            await emit(apology)
        except Exception as exc:
            stats.reply_errors += 1
            log.failed(
                "reply",
                f"{exc!r}; apologising",
                exc_info=None if isinstance(exc, ReplyError) else exc,
            )
            splitter = SentenceSplitter()
            await emit(apology)
        for sentence in splitter.flush():
            await emit(sentence)


async def synthesize_sentences(
    sentences_in: trio.MemoryReceiveChannel[Sentence],
    audio: ReplyAudio,
    *,
    tts: TextToSpeech,
    time_limit: float,
    timing: TurnTiming | None = None,
    leading_silence_ms: int | None = None,
    trailing_silence_ms: int | None = None,
) -> None:
    """Synthesize each sentence into ``audio``, a few sentences ahead of the one playing.

    The engine's silence around each sentence is cut to ``leading_silence_ms`` before and
    ``trailing_silence_ms`` after (``None``: kept). Raises :class:`EngineError` when the TTS
    engine fails or takes longer than ``time_limit``. Finishes ``audio`` when the sentences end.
    """
    async with sentences_in:
        async for sentence in sentences_in:
            await audio.wait_for_room()
            if sentence.audio is not None:  # a clip: played as it is
                if timing is not None and timing.first_audio is None:
                    timing.first_audio = trio.current_time()
                audio.add(sentence.audio)
                continue
            try:
                with trio.fail_after(time_limit):
                    pcm = await tts.synthesize(sentence.text)
            except trio.TooSlowError:
                raise EngineError(f"{tts.name} took longer than {time_limit:g} s") from None
            if timing is not None and timing.first_audio is None:
                timing.first_audio = trio.current_time()
            audio.add(
                trim_silence(pcm, leading_ms=leading_silence_ms, trailing_ms=trailing_silence_ms)
            )
    audio.finish()


async def play_reply(
    audio: ReplyAudio,
    outbound: trio.MemorySendChannel[twilio.OutboundEvent],
    *,
    playback: Playback,
    pacer: Pacer,
    ledger: ReplyLedger,
    chunk_ms: int,
    mark_grace: float,
    timing: TurnTiming | None = None,
) -> None:
    """Send the reply's audio as paced μ-law chunks, a mark after each, then wait until Twilio
    says all of it has played (at most ``mark_grace`` seconds past the estimated end).

    Each stretch of playing runs in ``playback``'s cancel scope: a pause cancels it. Resumed,
    it plays again from the start of the word the caller was hearing when it stopped
    (:meth:`ReplyLedger.resume_point`, :func:`rewind`), so no word is lost.
    """
    chunk_samples = SAMPLE_RATE * chunk_ms // 1000
    sentence, offset = audio.first, 0
    async with outbound:
        while True:
            with playback.playing():
                while True:
                    await audio.wait_for(sentence)
                    pcm = audio.get(sentence)
                    if pcm is None:
                        break  # the reply is over
                    audio.playing(sentence)
                    while offset < len(pcm):
                        chunk = pcm[offset : offset + chunk_samples]
                        duration = len(chunk) / SAMPLE_RATE
                        await pacer.wait_for_room(duration)
                        await outbound.send(twilio.SendMedia(ulaw_encode(chunk)))
                        if timing is not None and timing.first_sent is None:
                            timing.first_sent = trio.current_time()
                        pacer.sent(duration)
                        offset += len(chunk)
                        mark = ledger.chunk_sent(sentence, offset / len(pcm), offset)
                        await outbound.send(twilio.SendMark(mark))
                    sentence, offset = sentence + 1, 0
                ledger.finished_sending()
                with trio.move_on_after(pacer.queued + mark_grace):
                    await ledger.all_played.wait()
                return
            await playback.wait_resumed()
            sentence, offset = ledger.resume_point()
            pcm = audio.get(sentence)
            if sentence < audio.first:
                sentence, offset = audio.first, 0
            elif pcm is not None and offset >= len(pcm):
                sentence, offset = sentence + 1, 0  # that sentence was heard to its end
            elif pcm is not None:
                offset = rewind(pcm, offset)


async def transmit(
    outbound_in: trio.MemoryReceiveChannel[twilio.OutboundEvent],
    socket: CallSocket,
    *,
    stream_sid: str,
) -> None:
    """The only writer to the socket: serializes each outbound event, in order.

    Its channel is unbuffered, so an event is either written or was never accepted: a ``clear``
    sent after cancelling the speaker is always the last thing Twilio gets of that reply.
    """
    async with outbound_in:
        async for event in outbound_in:
            await socket.send(twilio.serialize(stream_sid, event))
