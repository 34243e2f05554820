"""A fake OpenAI-compatible chat model, in memory: test an :class:`~phoneactors.llm.Assistant`
bot offline and deterministically, under trio's ``MockClock``.

Each request to the fake gets the next scripted stream: a list of steps, each a delay (trio time)
and a delta to send (text, a tool call) or :data:`BREAK` to cut the stream there::

    model = FakeChatModel(say("Sure. We open at nine."), [*say("Bye!"), *tool_call("hang_up")])
    bot = Assistant(model.client(), model="any")

The fake records every request body (``model.requests``: the prompt the bot sent) and counts
streams the bot stopped reading (``model.closed_early``: an interruption). Needs the ``llm``
extra (``openai``, with ``httpx``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, TypeAlias

import trio

__all__ = ["BREAK", "FakeChatModel", "Step", "say", "tool_call"]

BREAK: Final = "break"
"""A step that cuts the stream there, as a dropped connection would."""

Step: TypeAlias = tuple[float, Mapping[str, Any] | str]
"""Seconds to wait (trio time), then a delta to send, or :data:`BREAK`."""


def say(text: str, every: float = 0.2) -> list[Step]:
    """Steps that stream ``text`` a word at a time, ``every`` seconds apart."""
    return [(every, {"content": word + " "}) for word in text.split()]


def tool_call(name: str, arguments: Mapping[str, Any] | None = None, index: int = 0) -> list[Step]:
    """Steps that stream one tool call, as OpenAI's API does (the name, then the arguments)."""
    start = {"index": index, "id": f"call_{index}", "type": "function"}
    return [
        (0.0, {"tool_calls": [{**start, "function": {"name": name, "arguments": ""}}]}),
        (
            0.0,
            {
                "tool_calls": [
                    {"index": index, "function": {"arguments": json.dumps(arguments or {})}}
                ]
            },
        ),
    ]


class FakeChatModel:
    """An OpenAI-compatible ``/chat/completions`` endpoint in memory, one script per request."""

    def __init__(self, *scripts: list[Step]) -> None:
        self.scripts = list(scripts)
        self.requests: list[dict[str, Any]] = []
        """Every request's JSON body, in order."""
        self.finished_at: list[float] = []
        """When each stream that ran to its end sent its last delta (trio time)."""
        self.closed_early = 0
        """Streams the client stopped reading before their end."""

    def client(self) -> Any:
        """An ``openai.AsyncOpenAI`` that talks to this fake (no sockets, no retries)."""
        import httpx
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            base_url="http://fake-model.invalid/v1",
            api_key="fake",
            max_retries=0,
            # openai types its client against a vendored httpx; the real one works the same.
            http_client=httpx.AsyncClient(  # type: ignore[arg-type]
                transport=httpx.MockTransport(self._handle)
            ),
        )

    async def _handle(self, request: Any) -> Any:
        import httpx

        self.requests.append(json.loads(request.content))
        if not self.scripts:
            return httpx.Response(500, json={"error": {"message": "the fake has no more scripts"}})
        script = self.scripts.pop(0)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=self._events(script)
        )

    async def _events(self, script: list[Step]) -> AsyncIterator[bytes]:
        import httpx

        finished = False
        try:
            for delay, delta in script:
                await trio.sleep(delay)
                if delta == BREAK:
                    raise httpx.ReadError("the fake model dropped the connection")
                chunk = {
                    "id": "fake",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            self.finished_at.append(trio.current_time())
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            if not finished:
                self.closed_early += 1
