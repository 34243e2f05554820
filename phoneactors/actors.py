"""The actors of one call: small ``async def`` functions, each doing one job.

They are joined by memory channels that :mod:`phoneactors.call` opens; each actor closes the
channels it sends on when it returns, so the next one sees end-of-channel. None of them catch
``trio.Cancelled``: barge-in and hang-up are cancellation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, Final

import trio

from . import twilio
from .audio import PCM, SAMPLE_RATE, Framer, ulaw_decode, ulaw_encode
from .conversation import Clip, Reply, TurnSoFar
from .engines import (
    SpeechToText,
    TextToSpeech,
    Transcription,
    VoiceActivityDetector,
    as_transcription,
)
from .engines.base import AlternativesSpeechToText
from .errors import EngineError, ProtocolError, ReplyError, SocketClosed
from .messages import (
    KeyPressed,
    Sentence,
    SpeechStarted,
    Transcript,
    TranscriptionFailed,
    TurnEvent,
    TurnJudged,
    Utterance,
)
from .noise import NoiseGate
from .nonspeech import words_heard
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
    "CallLog",
    "CallStats",
    "detect_speech",
    "generate_sentences",
    "play_reply",
    "receive_twilio",
    "synthesize_sentences",
    "transcribe_utterances",
    "transmit",
]

_LOG_FIRST: Final = 5
"""Repeated per-call warnings (dropped frames, bad messages) are logged this many times, then
every hundredth time, so a flood cannot flood the log."""


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """A logger that prefixes every line with the call sid, and reports contained failures
    (:meth:`failed`) to ``on_failure`` as well, for the call records and metrics."""

    def __init__(
        self,
        logger: logging.Logger,
        call_sid: str,
        on_failure: Callable[[str, str], object] | None = None,
    ) -> None:
        super().__init__(logger, {"call_sid": call_sid})
        self.call_sid = call_sid
        self._on_failure = on_failure

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {"call_sid": self.call_sid, **kwargs.get("extra", {})}
        return f"call {self.call_sid}: {msg}", kwargs

    def failed(self, kind: str, message: str, *, exc_info: BaseException | None = None) -> None:
        """Log a failure that costs a turn, not the call (``kind``: stt, tts, reply, hook)."""
        self.error("%s failed: %s", kind, message, exc_info=exc_info)
        if self._on_failure is not None:
            self._on_failure(kind, message)


@dataclass
class CallStats:
    """Counters for one call; read by logs, tests and metrics."""

    frames_received: int = 0
    frames_dropped: int = 0
    bad_messages: int = 0
    dtmf_dropped: int = 0
    utterances: int = 0
    replies: int = 0
    barge_ins: int = 0
    false_interruptions: int = 0
    """Caller sounds over a reply that paused it, then let it play on."""
    judgements_dropped: int = 0
    """Judgements of the words at a pause the VAD actor was too far behind to take."""
    early_transcriptions_shed: int = 0
    """Transcriptions of a pause dropped because the caller talked on before they were done."""
    reply_errors: int = 0
    engine_errors: int = 0


def worth_logging(count: int) -> bool:
    return count <= _LOG_FIRST or count % 100 == 0


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


async def _next_utterance(
    utterances_in: trio.MemoryReceiveChannel[Utterance], first: Utterance | None = None
) -> Utterance:
    """The next utterance worth transcribing (``first``, if one was already taken).

    An early (pause) utterance with another already queued behind it is stale: the caller
    spoke again, or the turn ended. It is skipped; a final one never is.
    """
    utterance = first if first is not None else await utterances_in.receive()
    while not utterance.final:
        try:
            utterance = utterances_in.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return utterance


async def transcribe_utterances(
    utterances_in: trio.MemoryReceiveChannel[Utterance],
    turns_out: trio.MemorySendChannel[TurnEvent],
    judgements_out: trio.MemorySendChannel[Any],
    *,
    stt: SpeechToText,
    judge: Callable[[TurnSoFar], Awaitable[bool]],
    time_limit: float,
    stats: CallStats,
    log: CallLog,
) -> None:
    """Transcribe each utterance (off the trio thread, inside the engine).

    Audio that arrives at a pause is transcribed at once, and its words are judged (``judge``:
    does the turn read complete?) and sent back to the VAD actor as :class:`TurnJudged`, which
    decides how long a silence ends the turn. If the caller then stays quiet, the final
    utterance is the same audio and that early transcript is used, so the transcription
    overlaps the end-of-speech wait. A transcript that holds no words by the engine's own
    signals (a cough "heard" as "Thank you.") counts as no words (:func:`words_heard`). An
    engine failure or timeout costs that utterance only: it becomes
    :class:`TranscriptionFailed`.
    """
    early: _Heard | str | None = None  # what the last pause's audio held, or why that failed
    early_pause: int | None = None
    newer: Utterance | None = None  # came while a pause's audio was being transcribed
    async with utterances_in, turns_out, judgements_out:
        while True:
            try:
                utterance = await _next_utterance(utterances_in, newer)
            except trio.EndOfChannel:
                return
            newer = None
            reuse = utterance.final and utterance.continues_pause and early_pause == utterance.pause
            if not (reuse and early is not None):
                if utterance.final:
                    early = await _transcribe(stt, utterance.audio, time_limit)
                else:
                    early, newer = await _transcribe_unless_stale(
                        stt, utterance, utterances_in, time_limit
                    )
                    if early is None:  # the caller went on: shed before it cost much
                        stats.early_transcriptions_shed += 1
                        early_pause = None
                        continue
                early_pause = utterance.pause
            if not utterance.final:
                complete = True  # no words, or a failure: nothing to wait for
                if isinstance(early, _Heard) and early.words:
                    said = early.transcription
                    so_far = TurnSoFar(
                        early.words,
                        utterance.audio,
                        said.last_word_logprob,
                        said.alternatives,
                        said.avg_logprob,
                    )
                    complete = await judge(so_far)
                assert utterance.pause is not None
                try:  # never wait on the VAD actor, which may be waiting on us
                    judgements_out.send_nowait(TurnJudged(utterance.pause, complete))
                except trio.WouldBlock:
                    stats.judgements_dropped += 1
                    if worth_logging(stats.judgements_dropped):
                        log.warning(
                            "VAD behind: judgement of a pause dropped (the turn waits the long "
                            "silence), %d so far",
                            stats.judgements_dropped,
                        )
                continue  # kept, in case the caller stays quiet
            heard, early, early_pause = early, None, None
            if isinstance(heard, str):  # the same audio failed: don't wait for it twice
                stats.engine_errors += 1
                log.failed("stt", heard)
                await turns_out.send(TranscriptionFailed(heard))
                continue
            assert heard is not None
            stats.utterances += 1
            if heard.words:
                log.info("caller said %r", heard.words)
            else:
                log.info("caller made a sound without words (heard as %r)", heard.sound)
            await turns_out.send(
                Transcript(
                    heard.words,
                    speech_ended_at=utterance.speech_ended_at,
                    utterance_ended_at=utterance.ended_at,
                    transcribed_at=heard.at,
                    sound=heard.sound,
                    avg_logprob=heard.transcription.avg_logprob,
                    audio=utterance.audio,
                )
            )


@dataclass(frozen=True, slots=True)
class _Heard:
    """One transcription: the engine's answer, the words it holds, and when it was ready."""

    transcription: Transcription
    words: str
    """The words, or '' when the audio held none (:func:`words_heard`)."""
    at: float

    @property
    def sound(self) -> str:
        """What the engine made of audio without words ('' when it held words)."""
        return "" if self.words else self.transcription.text.strip()


async def _transcribe_unless_stale(
    stt: SpeechToText,
    utterance: Utterance,
    utterances_in: trio.MemoryReceiveChannel[Utterance],
    time_limit: float,
) -> tuple[_Heard | str | None, Utterance | None]:
    """Transcribe a pause's audio, unless the next utterance comes first and makes it stale
    (the caller talked on, so a later pause or the turn's end holds more audio): then the
    transcription is cancelled, which sheds it while it still waits for a CPU thread (a busy
    box), and ``None`` is returned with that utterance. The end of this same pause keeps the
    transcription going: its text is the turn's. Returns (what the audio held, the next
    utterance if it was taken)."""
    heard: list[_Heard | str] = []
    newer: list[Utterance] = []
    async with trio.open_nursery() as nursery:

        async def transcribe() -> None:
            heard.append(await _transcribe(stt, utterance.audio, time_limit, alternatives=True))
            nursery.cancel_scope.cancel()

        async def watch() -> None:
            with suppress(trio.EndOfChannel):
                newer.append(await utterances_in.receive())
                same_audio = newer[0].final and newer[0].continues_pause
                if not (same_audio and newer[0].pause == utterance.pause):
                    nursery.cancel_scope.cancel()

        nursery.start_soon(transcribe)
        nursery.start_soon(watch)
    return (heard[0] if heard else None), (newer[0] if newer else None)


async def _transcribe(
    stt: SpeechToText, audio: PCM, time_limit: float, *, alternatives: bool = False
) -> _Heard | str:
    """Transcribe ``audio`` (with the readings the engine nearly heard, if asked and it can);
    returns what it held, or why the engine failed."""
    try:
        with trio.fail_after(time_limit):
            if alternatives and isinstance(stt, AlternativesSpeechToText):
                transcription = await stt.transcribe_with_alternatives(audio)
            else:
                transcription = as_transcription(await stt.transcribe(audio))
    except (EngineError, trio.TooSlowError) as exc:
        return str(exc) or f"{stt.name} took longer than {time_limit:g} s"
    return _Heard(transcription, words_heard(transcription, audio), trio.current_time())


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
