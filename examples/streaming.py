"""A bot whose reply streams, as an LLM's tokens would: speech starts on the first sentence.

python -m phoneactors --conversation examples.streaming:Storyteller
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from phoneactors import Conversation

STORY = (
    "Once upon a time, a small robot answered the phone. "
    "It listened carefully to every caller. "
    "And whenever someone interrupted, it stopped talking at once."
)


class Storyteller(Conversation):
    greeting = "Hello! Ask me for a story."

    async def reply(self, text: str) -> AsyncIterator[str]:
        for word in STORY.split(" "):
            await trio.sleep(0.05)  # a stand-in for waiting on the next token
            yield word + " "
