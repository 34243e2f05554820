"""The browser softphone and the transcript side channel it (and the simulator) listens to.

``GET /phone`` serves a small page (``phoneactors/static/``) that calls the bot from a browser: it
captures the microphone, turns it into 8 kHz μ-law, and speaks Twilio's Media Streams JSON over the
same ``/stream`` websocket a real call uses (``connected``, ``start``, ``media``, ``stop``; it
echoes ``mark`` and honours ``clear``), so the bot cannot tell it from a phone call.

Softphone tokens
----------------
Each page carries a token minted by the server (:class:`SoftphoneTokens`, an HMAC over its expiry
time, keyed by a secret made when the app is built). The page opens ``/stream?softphone=TOKEN``:

* a valid token marks the connection as a softphone: the server then also sends it transcript
  messages (below), and accepts it without a Twilio signature even when ``TWILIO_AUTH_TOKEN`` is
  set, because the page itself is only served when the operator allowed it;
* an invalid or expired token is refused (403); no token at all is the Twilio path, unchanged.

With ``TWILIO_AUTH_TOKEN`` set the page is off (``/phone`` answers 404, and the log says why) unless
the server runs with ``--softphone``: whoever can load the page can then talk to the bot, so turn it
on only where the page's address is private.

Transcripts
-----------
A softphone connection additionally receives, next to Twilio's ``media``/``mark``/``clear``::

    {"event":"transcript","streamSid":"MZ…","speaker":"caller","text":"What time is it?"}
    {"event":"transcript","streamSid":"MZ…","speaker":"bot","text":"You said: …"}

``caller`` is what the speech-to-text engine heard (sent when it finishes), ``bot`` each sentence as
it is synthesized (just before its audio is sent). Twilio never opens a softphone connection, so a
real call never sees these messages. They come from :func:`with_transcripts`, which wraps the call's
engines; the call runtime itself knows nothing about them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial
from importlib import resources
from typing import Final, Literal, TypeAlias, TypeVar

import trio

from . import twilio
from .audio import PCM
from .engines import Engines, SpeechToText, TextToSpeech, Transcription, as_transcription
from .engines.base import AlternativesSpeechToText, HintedSpeechToText
from .errors import ProtocolError, SocketClosed
from .transport import CallSocket

__all__ = [
    "STATIC_FILES",
    "SoftphoneTokens",
    "Speaker",
    "TranscriptListener",
    "TranscriptSocket",
    "page_html",
    "static_file",
    "transcript_message",
    "with_transcripts",
]

TOKEN_PARAMETER: Final = "softphone"
"""The query parameter of ``/stream`` that carries a softphone token."""
TOKEN_LIFETIME: Final = 3600.0
"""Seconds a page's token can open calls; reloading the page gets a fresh one."""
STATIC_FILES: Final = {
    "phone.js": "text/javascript",
    "capture-worklet.js": "text/javascript",
}
"""The page's assets, served under ``/phone/``, with their content types."""
_TOKEN_PLACEHOLDER: Final = "{{softphone_token}}"

Speaker: TypeAlias = Literal["caller", "bot"]
TranscriptListener: TypeAlias = Callable[[Speaker, str], Awaitable[None]]
"""Told each caller utterance as transcribed and each bot sentence as synthesized."""
_Heard = TypeVar("_Heard", bound=str | Transcription)


# --------------------------------------------------------------------------------------------
# Tokens


class SoftphoneTokens:
    """Mints and checks softphone tokens: ``<expiry>.<hmac-sha256(secret, expiry)>``.

    ``secret`` defaults to 32 random bytes, so tokens die with the server process. ``clock`` is
    the wall clock in seconds (``time.time``); tests pass their own.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        lifetime: float = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.lifetime = lifetime
        self._clock = clock

    def _digest(self, expiry: str) -> str:
        return hmac.new(self._secret, expiry.encode("ascii"), hashlib.sha256).hexdigest()

    def mint(self) -> str:
        """A new token, valid for :attr:`lifetime` seconds."""
        expiry = str(int(self._clock() + self.lifetime))
        return f"{expiry}.{self._digest(expiry)}"

    def check(self, token: str) -> bool:
        """Whether ``token`` was minted here and has not expired; never raises."""
        expiry, dot, digest = token.partition(".")
        if not dot or not expiry.isascii() or not expiry.isdigit() or len(expiry) > 20:
            return False
        if not hmac.compare_digest(
            digest.encode("ascii", "replace"), self._digest(expiry).encode()
        ):
            return False
        return int(expiry) > self._clock()


# --------------------------------------------------------------------------------------------
# The page


def static_file(name: str) -> str:
    """The text of one of the page's assets (a key of :data:`STATIC_FILES`).

    Raises ``KeyError`` for any other name, so a request path can never reach another file.
    """
    if name not in STATIC_FILES:
        raise KeyError(name)
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


def page_html(token: str) -> str:
    """The softphone page, carrying ``token`` for its calls."""
    page = (resources.files(__package__) / "static" / "phone.html").read_text(encoding="utf-8")
    if not token.replace(".", "").isalnum():
        raise ValueError("a softphone token is letters, digits and dots")
    return page.replace(_TOKEN_PLACEHOLDER, token)


# --------------------------------------------------------------------------------------------
# Transcripts


def transcript_message(stream_sid: str, speaker: Speaker, text: str) -> str:
    """The JSON text of one transcript message (see the module docstring)."""
    return json.dumps(
        {"event": "transcript", "streamSid": stream_sid, "speaker": speaker, "text": text},
        separators=(",", ":"),
        ensure_ascii=False,
    )


class _HeardSpeechToText:
    """A :class:`SpeechToText` that tells a listener what it heard, with the optional
    capabilities of the engine it wraps (and only those: the call asks with ``isinstance``).
    The transcript at a pause (``transcribe_with_alternatives``) is told like any other; a
    second look at a sound (``transcribe_hinted``) is not, as it reads the same sound again."""

    transcribe_hinted: Callable[[PCM, str], Awaitable[Transcription]]
    transcribe_with_alternatives: Callable[[PCM], Awaitable[Transcription]]

    def __init__(self, inner: SpeechToText, listener: TranscriptListener) -> None:
        self.name = inner.name
        self._inner = inner
        self._listener = listener
        if isinstance(inner, HintedSpeechToText):
            self.transcribe_hinted = inner.transcribe_hinted
        if isinstance(inner, AlternativesSpeechToText):
            self.transcribe_with_alternatives = partial(
                self._told, inner.transcribe_with_alternatives
            )

    async def load(self) -> None:
        await self._inner.load()

    async def transcribe(self, audio: PCM) -> str | Transcription:
        return await self._told(self._inner.transcribe, audio)

    async def _told(self, transcribe: Callable[[PCM], Awaitable[_Heard]], audio: PCM) -> _Heard:
        result = await transcribe(audio)
        await self._listener("caller", as_transcription(result).text.strip())
        return result


class _SpokenTextToSpeech:
    """A :class:`TextToSpeech` that tells a listener each sentence it has synthesized."""

    def __init__(self, inner: TextToSpeech, listener: TranscriptListener) -> None:
        self.name = inner.name
        self._inner = inner
        self._listener = listener

    async def load(self) -> None:
        await self._inner.load()

    async def synthesize(self, text: str) -> PCM:
        audio = await self._inner.synthesize(text)
        await self._listener("bot", text)
        return audio


def with_transcripts(engines: Engines, listener: TranscriptListener) -> Engines:
    """``engines`` for one call, telling ``listener`` what the caller said and the bot says.

    The wrappers share the engines' models (and ``ready``); they cost one await per utterance
    and per sentence. ``caller`` texts are stripped and may be empty (noise).
    """
    return Engines(
        vad=engines.vad,
        stt=_HeardSpeechToText(engines.stt, listener),
        tts=_SpokenTextToSpeech(engines.tts, listener),
        ready=engines.ready,
    )


class TranscriptSocket:
    """A softphone's :class:`~phoneactors.transport.CallSocket` that can also carry transcripts.

    Wraps the real socket: learns the stream sid from the ``start`` message as it passes, and
    serializes every send behind one lock, so :meth:`send_transcript` may run next to the call's
    transmitter.
    """

    def __init__(self, inner: CallSocket) -> None:
        self._inner = inner
        self._lock = trio.Lock()
        self.stream_sid: str | None = None

    async def receive(self) -> str | bytes:
        message = await self._inner.receive()
        if self.stream_sid is None:
            with suppress(ProtocolError):
                event = twilio.parse_event(message)
                if isinstance(event, twilio.Start):
                    self.stream_sid = event.stream_sid
        return message

    async def send(self, message: str) -> None:
        async with self._lock:
            await self._inner.send(message)

    async def close(self) -> None:
        await self._inner.close()

    async def send_transcript(self, speaker: Speaker, text: str) -> None:
        """Send one transcript message; empty text, and a closed socket, are ignored."""
        if not text or self.stream_sid is None:
            return
        with suppress(SocketClosed):
            await self.send(transcript_message(self.stream_sid, speaker, text))
