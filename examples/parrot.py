"""The smallest bot: repeats what the caller said.

python -m phoneactors --conversation examples.parrot:Parrot
"""

from __future__ import annotations

from phoneactors import Conversation


class Parrot(Conversation):
    greeting = "Hi! Say something and I will repeat it."

    async def reply(self, text: str) -> str:
        return f'You said: "{text}"'
