"""A touch-tone menu: the caller presses keys (DTMF) or says what they want.

python -m phoneactors --conversation examples.menu:Menu
"""

from __future__ import annotations

from phoneactors import Conversation

OPTIONS = {"1": "sales", "2": "support", "3": "billing"}


class Menu(Conversation):
    greeting = "Press 1 for sales, 2 for support, or 3 for billing."

    async def on_dtmf(self, digit: str) -> str:
        if digit in OPTIONS:
            return f"Connecting you to {OPTIONS[digit]}."
        return "Sorry, that is not an option. " + self.greeting

    async def reply(self, text: str) -> str:
        for department in OPTIONS.values():
            if department in text.lower():
                return f"Connecting you to {department}."
        return "Please press a key, or say sales, support or billing."
