"""Speech-to-text and text-to-speech on a server that speaks OpenAI's audio API (optional:
``phoneactors[remote]``).

Many speech servers expose the same two endpoints as OpenAI: ``POST /v1/audio/transcriptions``
(a multipart upload of an audio file; the answer is JSON with a ``text`` field) and
``POST /v1/audio/speech`` (JSON with ``model``, ``input`` and ``voice``; the answer is audio).
faster-whisper-server, whisper.cpp's server, vLLM, Kokoro-FastAPI and OpenAI itself are some.
These engines send each utterance or sentence there, so inference can run on machines of its
own, scaled apart from the call servers.

Requests are async (``httpx`` on trio, through anyio): no worker thread, no inference limiter.
Each engine owns one ``httpx.AsyncClient``, made in :meth:`load` and closed by ``aclose()``, with
a bounded connection pool that keeps connections alive between turns. Every request has one
overall deadline (``timeout``). The API key, when there is one, goes in an
``Authorization: Bearer`` header; it is never logged and never shown in a ``repr``.

``httpx`` is imported only when an engine is constructed (a presence check) and loaded.
"""

from __future__ import annotations

import importlib.util
import io
import math
import wave
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import trio

from ..audio import PCM, SAMPLE_RATE, float_to_pcm, pcm_to_float, resample
from ..errors import ConfigurationError, EngineError

if TYPE_CHECKING:
    import httpx

__all__ = ["RemoteSTT", "RemoteTTS", "endpoint_url"]

DEFAULT_STT_MODEL: Final = "whisper-1"
DEFAULT_TTS_MODEL: Final = "tts-1"
DEFAULT_VOICE: Final = "alloy"
"""OpenAI's names; other servers often accept them too, or name their own."""
DEFAULT_TIMEOUT: Final = 15.0
"""Seconds one request may take, connection included, before the turn gives up on it."""
CONNECT_TIMEOUT: Final = 5.0
"""Seconds to open a connection (at most the request's own timeout)."""
DEFAULT_MAX_CONNECTIONS: Final = 16
"""Connections one engine keeps open to its server at most: about one per concurrent turn."""
UPLOAD_RATES: Final = (8000, 16000)
"""Sample rates an utterance may be uploaded at. 16 kHz (the default) is what Whisper hears,
so no server has to resample; 8 kHz halves the upload."""
OPENAI_PCM_RATE: Final = 24000
"""OpenAI's ``response_format="pcm"``: raw 24 kHz 16-bit little-endian mono, no header."""
TRANSCRIPTIONS_PATH: Final = "/audio/transcriptions"
SPEECH_PATH: Final = "/audio/speech"
_EXCERPT_CHARS: Final = 200
_WARM_UP_SECONDS: Final = 0.5
_WARM_UP_TEXT: Final = "Hello."


def _require_httpx(role: str) -> None:
    if importlib.util.find_spec("httpx") is None:
        raise ConfigurationError(
            f"the 'openai' {role} engine needs the package httpx: pip install 'phoneactors[remote]'"
        )


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` (the server's root, or its ``/v1`` URL as OpenAI's clients take it) joined
    with ``/v1`` and ``path``.

    Raises :class:`~phoneactors.errors.ConfigurationError` unless ``base_url`` is an absolute
    http(s) URL without query or fragment.
    """
    text = base_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"the speech server URL must be an absolute http:// or https:// URL such as "
            f"http://127.0.0.1:8000, got {base_url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"the speech server URL {base_url!r} must not have a query or fragment"
        )
    root = text.rstrip("/")
    if not root.endswith("/v1"):
        root += "/v1"
    return root + path


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "…"
    return repr(text) if text else "(empty body)"


def _wav_bytes(audio: PCM, rate: int) -> bytes:
    """``audio`` (8 kHz int16) as a 16-bit mono WAV file at ``rate``."""
    samples = audio if rate == SAMPLE_RATE else float_to_pcm(resample(audio, SAMPLE_RATE, rate))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


def _decode_wav(body: bytes) -> tuple[npt.NDArray[np.float32], int]:
    """Float mono samples and rate of an integer PCM WAV file (8, 16, 24 or 32 bit, any number of
    channels, averaged). A data chunk whose size says 0xFFFFFFFF (how streaming servers write
    a header before they know the length) is read to the end of the body.

    Raises ``ValueError`` for anything else.
    """
    try:
        with wave.open(io.BytesIO(body), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file ({exc})") from exc
    if rate <= 0 or channels < 1:
        raise ValueError(f"a WAV file with {channels} channels at {rate} Hz")
    usable = len(frames) - len(frames) % (width * channels)
    raw = np.frombuffer(frames[:usable], dtype=np.uint8)
    if width == 1:
        samples = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = pcm_to_float(raw.view("<i2"))
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        samples = values.astype(np.float32) / float(1 << 23)
    elif width == 4:
        samples = (raw.view("<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    else:
        raise ValueError(f"a WAV file with {width}-byte samples")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples, rate


class _RemoteEngine:
    """What both remote engines share: the URL, the client's life and one request's rules."""

    name = "openai"
    _role = ""
    _path = ""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None,
        timeout: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        _require_httpx(self._role)
        self.url = endpoint_url(base_url, self._path)
        if not model.strip():
            raise ConfigurationError(f"the 'openai' {self._role} engine needs a model name")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout}")
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, got {max_connections}")
        if api_key is not None and (not api_key.strip() or "\n" in api_key):
            raise ConfigurationError(
                "the API key is empty or has a line break; leave it out if the server needs none"
            )
        self.model = model
        self.timeout = timeout
        self.max_connections = max_connections
        self._api_key = api_key
        self._transport = transport
        self._load_lock = trio.Lock()
        self._client: httpx.AsyncClient | None = None

    @property
    def authenticated(self) -> bool:
        """Whether requests carry an API key (the key itself is never shown)."""
        return self._api_key is not None

    def _new_client(self) -> httpx.AsyncClient:
        import httpx

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout)),
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
            transport=self._transport,
        )

    async def load(self) -> None:
        """Open the connection pool and make one warm-up request (see the subclass).

        Idempotent and safe to call from many tasks at once. Raises
        :class:`~phoneactors.errors.ConfigurationError` naming the URL when the server cannot be
        reached, times out, refuses the request (a bad key, an unknown model) or answers
        something that is not the API. If cancelled, returns at once with the pool closed; the
        next ``load()`` starts over.
        """
        async with self._load_lock:
            if self._client is not None:
                return
            client = self._new_client()
            warm = False
            try:
                await self._warm_up(client)
                warm = True
            except EngineError as exc:
                raise ConfigurationError(f"{exc} (in the warm-up request at start-up)") from exc
            finally:
                if not warm:  # failed or cancelled: close what was opened, even when cancelled
                    with trio.CancelScope(shield=True):
                        await client.aclose()
            self._client = client

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent; a later request loads the engine again.

        Requests still running on the pool fail with :class:`~phoneactors.errors.EngineError`.
        Closing is shielded from cancellation, so the sockets are closed even then.
        """
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def _warm_up(self, client: httpx.AsyncClient) -> None:
        raise NotImplementedError

    async def _client_for_request(self) -> httpx.AsyncClient:
        try:
            await self.load()
        except ConfigurationError as exc:  # mid-call, a failed (re)load is this turn's failure
            raise EngineError(str(exc)) from exc
        client = self._client
        if client is None:  # closed by aclose() while this request was loading
            raise EngineError(f"{self.name} {self._role}: the engine was closed")
        return client

    async def _post(self, client: httpx.AsyncClient, what: str, **request: Any) -> httpx.Response:
        """POST to :attr:`url`; raises :class:`EngineError` unless the answer is a 2xx in time.

        On cancellation the request is abandoned and its connection closed, never reused.
        """
        import httpx

        response: httpx.Response | None = None
        with trio.move_on_after(self.timeout):
            try:
                response = await client.post(self.url, **request)
            except httpx.TimeoutException as exc:
                raise EngineError(
                    f"{self.name} {self._role}: {what}: {self.url} did not answer within "
                    f"{self.timeout:g} s ({type(exc).__name__})"
                ) from exc
            except httpx.ConnectError as exc:
                raise EngineError(
                    f"{self.name} {self._role}: {what}: could not reach {self.url}: {exc!r}"
                ) from exc
            except httpx.HTTPError as exc:
                raise EngineError(
                    f"{self.name} {self._role}: {what}: the request to {self.url} failed: {exc!r}"
                ) from exc
            except RuntimeError as exc:  # httpx refuses to send on a closed client
                if not client.is_closed:
                    raise
                raise EngineError(f"{self.name} {self._role}: the engine was closed") from exc
        if response is None:
            raise EngineError(
                f"{self.name} {self._role}: {what}: {self.url} did not answer within "
                f"{self.timeout:g} s"
            )
        if not response.is_success:
            raise EngineError(
                f"{self.name} {self._role}: {what}: {self.url} answered HTTP "
                f"{response.status_code} {response.reason_phrase}: {_excerpt(response)}"
            )
        return response


class RemoteSTT(_RemoteEngine):
    """Speech-to-text on an OpenAI-compatible server (``POST /v1/audio/transcriptions``).

    ``base_url`` is the server's root URL (``http://127.0.0.1:8000``) or its ``/v1`` URL.
    ``model`` is the model name the server knows (OpenAI: ``whisper-1``; other servers: their
    own names). Each utterance is uploaded as a 16-bit mono WAV at ``upload_rate`` (16000 or
    8000 Hz) with ``language`` and ``response_format=json``; the answer's ``text`` is the
    transcript. ``api_key`` (``None``: no ``Authorization`` header) authenticates;
    ``timeout`` bounds each request; ``max_connections`` bounds the pool. ``transport`` replaces
    httpx's network transport (for tests: ``httpx.MockTransport``).

    Raises :class:`~phoneactors.errors.ConfigurationError` for a bad URL or option, or a missing
    httpx (naming the extra).
    """

    _role = "speech-to-text"
    _path = TRANSCRIPTIONS_PATH

    def __init__(
        self,
        base_url: str,
        *,
        model: str = DEFAULT_STT_MODEL,
        api_key: str | None = None,
        language: str = "en",
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        upload_rate: int = 16000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if upload_rate not in UPLOAD_RATES:
            raise ConfigurationError(
                f"upload_rate must be one of {', '.join(map(str, UPLOAD_RATES))}, got {upload_rate}"
            )
        super().__init__(
            base_url,
            model=model,
            api_key=api_key,
            timeout=timeout,
            max_connections=max_connections,
            transport=transport,
        )
        self.language = language
        self.upload_rate = upload_rate

    def __repr__(self) -> str:
        return (
            f"RemoteSTT({self.url!r}, model={self.model!r}, language={self.language!r}, "
            f"authenticated={self.authenticated})"
        )

    async def transcribe(self, audio: PCM) -> str:
        """Transcribe one utterance of 8 kHz int16 audio on the server; returns stripped text.

        Returns '' for empty audio (without a request) and for a transcript without words.
        Loads the engine first if :meth:`load` has not run. On cancellation the request is
        abandoned at once (its connection is closed, not reused). A failure raises
        :class:`~phoneactors.errors.EngineError` saying what happened: the server could not be
        reached, did not answer within ``timeout``, answered an HTTP error (its status and the
        start of its body are in the message), or answered something other than JSON with a
        ``text`` string.
        """
        if len(audio) == 0:
            return ""
        client = await self._client_for_request()
        return await self._transcribe(client, audio)

    async def _warm_up(self, client: httpx.AsyncClient) -> None:
        """Transcribe half a second of silence: proves the URL, the key and the model."""
        await self._transcribe(client, np.zeros(int(SAMPLE_RATE * _WARM_UP_SECONDS), np.int16))

    async def _transcribe(self, client: httpx.AsyncClient, audio: PCM) -> str:
        what = f"transcribing {len(audio) / SAMPLE_RATE:.2f} s of audio"
        response = await self._post(
            client,
            what,
            files={"file": ("utterance.wav", _wav_bytes(audio, self.upload_rate), "audio/wav")},
            data={"model": self.model, "language": self.language, "response_format": "json"},
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise EngineError(
                f"{self.name} {self._role}: {what}: {self.url} answered HTTP "
                f"{response.status_code} without JSON holding a 'text' string: {_excerpt(response)}"
            )
        text = " ".join(text.split())
        return text if any(char.isalnum() for char in text) else ""  # drop a lone "."


class RemoteTTS(_RemoteEngine):
    """Text-to-speech on an OpenAI-compatible server (``POST /v1/audio/speech``).

    ``base_url`` is the server's root URL or its ``/v1`` URL; ``model`` and ``voice`` are names
    the server knows (OpenAI: ``tts-1`` and ``alloy``). ``response_format`` is what the server is
    asked for: ``"wav"`` (read with the standard ``wave`` module, at whatever rate, width and
    channels its header says) or ``"pcm"`` (raw 16-bit little-endian mono at ``pcm_rate``,
    24000 Hz as OpenAI sends it). ``speed`` (``None``: the server's default) is sent when given.
    ``api_key``, ``timeout``, ``max_connections`` and ``transport`` are as for
    :class:`RemoteSTT`.

    Raises :class:`~phoneactors.errors.ConfigurationError` for a bad URL or option, or a missing
    httpx (naming the extra).
    """

    _role = "text-to-speech"
    _path = SPEECH_PATH

    def __init__(
        self,
        base_url: str,
        *,
        model: str = DEFAULT_TTS_MODEL,
        voice: str = DEFAULT_VOICE,
        api_key: str | None = None,
        response_format: Literal["wav", "pcm"] = "wav",
        pcm_rate: int = OPENAI_PCM_RATE,
        speed: float | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if response_format not in ("wav", "pcm"):
            raise ConfigurationError(
                f"response_format must be 'wav' or 'pcm', got {response_format!r}"
            )
        if pcm_rate <= 0:
            raise ConfigurationError(f"pcm_rate must be a positive rate in Hz, got {pcm_rate}")
        if speed is not None and not 0.25 <= speed <= 4.0:
            raise ConfigurationError(f"speed must be between 0.25 and 4.0, got {speed}")
        if not voice.strip():
            raise ConfigurationError("the 'openai' text-to-speech engine needs a voice name")
        super().__init__(
            base_url,
            model=model,
            api_key=api_key,
            timeout=timeout,
            max_connections=max_connections,
            transport=transport,
        )
        self.voice = voice
        self.response_format = response_format
        self.pcm_rate = pcm_rate
        self.speed = speed

    def __repr__(self) -> str:
        return (
            f"RemoteTTS({self.url!r}, model={self.model!r}, voice={self.voice!r}, "
            f"response_format={self.response_format!r}, authenticated={self.authenticated})"
        )

    async def synthesize(self, text: str) -> PCM:
        """Speak ``text`` (one sentence, or a few) on the server; returns 8 kHz int16 audio.

        Blank text returns an empty array without a request. Loads the engine first if
        :meth:`load` has not run. The answer is resampled to 8 kHz on the trio thread (about a
        millisecond for a sentence). On cancellation the request is abandoned at once (its
        connection is closed, not reused). A failure raises
        :class:`~phoneactors.errors.EngineError` saying what happened: the server could not be
        reached, did not answer within ``timeout``, answered an HTTP error (its status and the
        start of its body are in the message), or answered audio that cannot be read.
        """
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        client = await self._client_for_request()
        return await self._synthesize(client, text)

    async def _warm_up(self, client: httpx.AsyncClient) -> None:
        """Speak one short word: proves the URL, the key, the model and the voice."""
        await self._synthesize(client, _WARM_UP_TEXT)

    async def _synthesize(self, client: httpx.AsyncClient, text: str) -> PCM:
        what = f"synthesizing {text[:60]!r}"
        payload: dict[str, object] = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": self.response_format,
        }
        if self.speed is not None:
            payload["speed"] = self.speed
        response = await self._post(client, what, json=payload)
        body = response.content
        try:
            if self.response_format == "wav":
                samples, rate = _decode_wav(body)
            else:
                if len(body) % 2:
                    raise ValueError(f"raw 16-bit PCM of an odd length ({len(body)} bytes)")
                samples, rate = pcm_to_float(np.frombuffer(body, dtype="<i2")), self.pcm_rate
        except ValueError as exc:
            content_type = response.headers.get("content-type", "no content type")
            raise EngineError(
                f"{self.name} {self._role}: {what}: {self.url} answered HTTP "
                f"{response.status_code} ({content_type}) with {len(body)} bytes that are not "
                f"{self.response_format} audio: {exc}"
            ) from exc
        return float_to_pcm(resample(samples, rate, SAMPLE_RATE))
