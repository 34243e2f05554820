"""A bot that knows what the caller heard before they talked over it.

python -m phoneactors --conversation examples.interrupted:Listener
"""

from __future__ import annotations

from phoneactors import Conversation, Interruption


class Listener(Conversation):
    greeting = (
        "Let me read you our opening hours. Monday to Friday we are open from nine to five. "
        "On Saturdays from ten to two. On Sundays we are closed."
    )

    def __init__(self) -> None:
        self.unheard = ""

    async def on_interrupted(self, interruption: Interruption) -> None:
        self.unheard = interruption.unheard

    async def reply(self, text: str) -> str:
        if "continue" in text.lower() and self.unheard:
            rest, self.unheard = self.unheard, ""
            return "As I was saying: " + rest
        return "Sure. Say continue if you want the rest of what I was saying."
