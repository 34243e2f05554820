"""The transcriber actor of a call: each utterance the VAD actor hands on is transcribed off
the trio thread, and what it held goes on as a turn event; the audio at a pause is
transcribed early and its words judged, so the VAD actor knows how long a silence ends the
turn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import trio

from .audio import PCM
from .call_log import CallLog, CallStats, worth_logging
from .conversation import TurnSoFar
from .engines import SpeechToText, Transcription, as_transcription
from .engines.base import AlternativesSpeechToText
from .errors import EngineError
from .messages import Transcript, TranscriptionFailed, TurnEvent, TurnJudged, Utterance
from .nonspeech import words_heard

__all__ = ["transcribe_utterances"]


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
