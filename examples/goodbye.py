"""A bot that ends the call: its last words play in full before the line closes.

python -m phoneactors --conversation examples.goodbye:Receptionist
"""

from __future__ import annotations

from phoneactors import Conversation


class Receptionist(Conversation):
    greeting = "Good morning. How can I help? Say goodbye when you are done."

    async def reply(self, text: str) -> str:
        if "bye" in text.lower():
            self.hang_up()  # after this reply has been heard
            return "Goodbye, and thank you for calling."
        return "I can help with that. Anything else?"

    async def on_end(self, reason: str) -> None:
        print(f"call {self.call.call_sid} ended: {reason}")
