"""A phone assistant answered by a language model on any OpenAI-compatible server.

:class:`Assistant` is a :class:`~phoneactors.Conversation` whose replies stream from a chat
completion (OpenAI, Ollama, a llama.cpp server, vLLM, …): tokens become sentences and each
sentence is spoken as soon as it is complete, while the rest is still being generated. Its prompt
is the system prompt and the call's :attr:`~phoneactors.Conversation.history`, which holds what
the caller actually heard, so a reply the caller cut short is remembered as far as it was heard.
The model may also act on the call through three tools: ``hang_up``, ``transfer`` (to a number or
SIP address) and ``press_keys`` (DTMF towards a phone menu).

Serve it without writing code (``pip install 'phoneactors[llm]'``)::

    export OPENAI_API_KEY=…  PHONEACTORS_LLM_MODEL=gpt-4o-mini
    phoneactors --conversation phoneactors.llm:assistant

``assistant`` is a lifespan: one HTTP client for every call, opened at start-up, closed at
shutdown. It reads ``PHONEACTORS_LLM_MODEL`` (required), ``PHONEACTORS_LLM_SYSTEM_PROMPT``,
``PHONEACTORS_LLM_GREETING``, and the ``openai`` package's own ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` (``http://localhost:11434/v1`` for Ollama). Subclass :class:`Assistant` for
your own prompt or tools.

The ``openai`` package runs under trio as it is (it is built on httpx and anyio).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import trio

from .conversation import CallInfo, Conversation
from .errors import ConfigurationError

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import ChatCompletionChunk

__all__ = ["DEFAULT_SYSTEM_PROMPT", "TOOLS", "Assistant", "ToolCall", "assistant"]

logger = logging.getLogger("phoneactors.llm")

CLOSE_TIMEOUT_S: Final = 2.0
"""Longest wait for a cut-short stream's connection to close."""

DEFAULT_SYSTEM_PROMPT: Final = (
    "You are a friendly assistant answering a phone call. Everything you write is spoken "
    "aloud, so answer in one to three short sentences of plain speech: no lists, no markdown, "
    "no emoji, and numbers written as they are said. If the caller wants to end the call, say "
    "goodbye and use the hang_up tool."
)

TOOLS: Final[Sequence[Mapping[str, Any]]] = (
    {
        "type": "function",
        "function": {
            "name": "hang_up",
            "description": "End the call, after what you are saying now has been heard.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "transfer",
            "description": (
                "Put the caller through to a person or another line, after what you are saying "
                "now has been heard."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {
                        "type": "string",
                        "description": "a phone number in E.164 form, or a sip: address",
                    }
                },
                "required": ["to"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "press_keys",
            "description": "Press phone keys (DTMF), to make a choice in a phone menu.",
            "parameters": {
                "type": "object",
                "properties": {
                    "digits": {"type": "string", "description": "0-9, * and #, e.g. '2#'"}
                },
                "required": ["digits"],
            },
        },
    },
)
"""The call-control tools the model is offered (OpenAI's function-tool format)."""


@dataclass
class ToolCall:
    """A tool call as it streams in: pieces of its name and JSON arguments."""

    name: str = ""
    arguments: str = ""

    def parsed(self) -> dict[str, Any]:
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class _Calls:
    """The tool calls of one streamed completion, by index."""

    calls: dict[int, ToolCall] = field(default_factory=dict)

    def add(self, deltas: Sequence[Any]) -> None:
        for delta in deltas:
            call = self.calls.setdefault(int(delta.index or 0), ToolCall())
            function = delta.function
            if function is not None:
                call.name += function.name or ""
                call.arguments += function.arguments or ""


class Assistant(Conversation):
    """A conversation answered by ``model`` through ``client`` (an ``openai.AsyncOpenAI``).

    ``system`` is the system prompt (default :data:`DEFAULT_SYSTEM_PROMPT`); ``greeting`` is
    spoken as the call connects; ``tools`` offers the model :data:`TOOLS` (the server must
    support tool calls; turn it off for one that does not). ``options`` go to
    ``chat.completions.create`` as they are (``temperature``, ``max_tokens``, …).

    A reply streams: each sentence is spoken as soon as it is complete. If the stream fails
    half-way, what was said stays said and the caller hears the apology; the call goes on. If
    the caller interrupts, generation stops, and the history keeps what they heard.
    """

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        system: str | None = None,
        greeting: str | None = "Hello, how can I help?",
        tools: bool = True,
        **options: Any,
    ) -> None:
        if not model.strip():
            raise ConfigurationError("the assistant needs a model name")
        self.client = client
        self.model = model
        self.system = DEFAULT_SYSTEM_PROMPT if system is None else system
        self.greeting = greeting
        self.tools = tools
        self.options = options

    def messages(self) -> list[dict[str, Any]]:
        """The prompt of the next reply: the system prompt and the call's history."""
        return list(self.history.as_messages(system=self.system))

    def tools_offered(self) -> list[Mapping[str, Any]]:
        """The tools the model is offered (:data:`TOOLS`, or none with ``tools=False``).
        Override it, with :meth:`use_tool`, to add tools of your own."""
        return list(TOOLS) if self.tools else []

    async def reply(self, text: str) -> AsyncIterator[str]:
        tools = self.tools_offered()
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        stream = cast(
            "AsyncStream[ChatCompletionChunk]",
            await self.client.chat.completions.create(
                model=self.model,
                messages=self.messages(),  # type: ignore[arg-type]
                stream=True,
                **extra,
                **self.options,
            ),
        )
        calls = _Calls()
        try:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    yield delta.content
                if delta.tool_calls:
                    calls.add(delta.tool_calls)
        finally:
            # Closing the response is what tells the server to stop generating. When the caller
            # interrupts, this may run inside a cancelled scope: shielded, so the close is done.
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
                await stream.close()
        for call in calls.calls.values():
            self.use_tool(call.name, call.parsed())

    def use_tool(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Act on a tool call of the model (after the reply's text). Override it to add tools
        of your own (and offer them in :meth:`tools_offered`)."""
        logger.info("call %s: the model used %s(%s)", self.call.call_sid, name, dict(arguments))
        if name == "hang_up":
            self.hang_up()
        elif name == "transfer":
            try:
                self.transfer(str(arguments.get("to", "")))
            except ConfigurationError as exc:
                logger.warning("call %s: transfer failed: %s", self.call.call_sid, exc)
                self.say("Sorry, I cannot put you through right now.")
        elif name == "press_keys":
            try:
                self.send_digits(str(arguments.get("digits", "")))
            except ValueError as exc:
                logger.warning("call %s: press_keys failed: %s", self.call.call_sid, exc)
        else:
            logger.warning(
                "call %s: the model asked for an unknown tool %r", self.call.call_sid, name
            )


@asynccontextmanager
async def assistant() -> AsyncIterator[Any]:
    """A lifespan for ``--conversation phoneactors.llm:assistant``: one ``AsyncOpenAI``
    client for every call, configured from the environment (see the module docstring)."""
    try:
        from openai import AsyncOpenAI
    except ImportError:
        raise ConfigurationError(
            "the LLM assistant needs the openai package: pip install 'phoneactors[llm]'"
        ) from None
    model = os.environ.get("PHONEACTORS_LLM_MODEL", "").strip()
    if not model:
        raise ConfigurationError(
            "set PHONEACTORS_LLM_MODEL to the chat model to use (e.g. gpt-4o-mini, or llama3.2 "
            "with OPENAI_BASE_URL=http://localhost:11434/v1 for Ollama)"
        )
    system = os.environ.get("PHONEACTORS_LLM_SYSTEM_PROMPT") or None
    greeting = os.environ.get("PHONEACTORS_LLM_GREETING") or "Hello, how can I help?"
    # A local server (Ollama, llama.cpp) needs no key; the client insists on one.
    api_key = os.environ.get("OPENAI_API_KEY") or "none"
    async with AsyncOpenAI(api_key=api_key) as client:

        def make(call: CallInfo) -> Assistant:
            return Assistant(client, model=model, system=system, greeting=greeting)

        yield make
