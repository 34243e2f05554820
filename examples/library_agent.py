"""An LLM phone agent with a tool of its own: a library desk that looks up opening hours, and
otherwise answers with the model, puts callers through to a librarian, or hangs up.

    export PHONEACTORS_LLM_MODEL=llama3.2 OPENAI_BASE_URL=http://localhost:11434/v1  # Ollama
    python -m phoneactors --conversation examples.library_agent:lifespan

Needs ``pip install 'phoneactors[llm]'``; transfers need ``TWILIO_AUTH_TOKEN``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from phoneactors import CallInfo
from phoneactors.llm import Assistant

HOURS = {"monday": "nine to six", "saturday": "ten to four", "sunday": "closed"}
LIBRARIAN = "+15550100999"

HOURS_TOOL = {
    "type": "function",
    "function": {
        "name": "opening_hours",
        "description": "Say the library's opening hours for a day of the week.",
        "parameters": {
            "type": "object",
            "properties": {"day": {"type": "string", "description": "e.g. monday"}},
            "required": ["day"],
        },
    },
}


class LibraryAgent(Assistant):
    """The model, with the library's hours as a tool and a librarian to transfer to."""

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(
            client,
            system=(
                "You answer the phone for the city library. Keep answers to one or two short "
                "spoken sentences. For opening hours use the opening_hours tool. If the caller "
                f"wants a librarian, use the transfer tool with {LIBRARIAN}."
            ),
            greeting="City library, how can I help?",
            **options,
        )

    def tools_offered(self) -> list[Mapping[str, Any]]:
        return [*super().tools_offered(), HOURS_TOOL]

    def use_tool(self, name: str, arguments: Mapping[str, Any]) -> None:
        if name == "opening_hours":
            day = str(arguments.get("day", "")).strip().lower()
            hours = HOURS.get(day)
            self.say(f"On {day} we are {hours}." if hours else "I don't know that day, sorry.")
            return
        super().use_tool(name, arguments)


@asynccontextmanager
async def lifespan() -> AsyncIterator[Any]:
    from openai import AsyncOpenAI

    model = os.environ.get("PHONEACTORS_LLM_MODEL", "llama3.2")
    async with AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "none") as client:

        def make(call: CallInfo) -> LibraryAgent:
            return LibraryAgent(client, model=model)

        yield make
