"""Handing a call on: the bot says its line to the end, then Twilio is told to dial; a refusal
reaches the conversation, and the call goes on."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from phoneactors import twiml
from phoneactors.call import CallSettings
from phoneactors.conversation import Conversation
from phoneactors.errors import ConfigurationError, TwilioApiError
from phoneactors.outbound import TwilioApi
from phoneactors.testing import FakeSpeech, open_call
from tests.test_outbound import ACCOUNT, CALL_SID, TOKEN, FakeTwilioApi, LocalTwilio
from tests.test_outbound import api as api  # the fake of Twilio's REST API (a fixture)

SETTINGS = CallSettings(idle_timeout=None)


class Desk(Conversation):
    greeting = None

    def __init__(self, to: str = "+15557654321") -> None:
        self.to = to
        self.failures: list[str] = []

    async def reply(self, text: str) -> str | None:
        try:
            self.transfer(self.to, say="Let me put you through to a colleague.")
        except ConfigurationError as exc:
            self.failures.append(str(exc))
            return "Sorry, I cannot put you through."
        return "One moment."

    async def on_transfer_failed(self, to: str, error: str) -> str | None:
        self.failures.append(error)
        return await super().on_transfer_failed(to, error)


def test_dial_twiml_takes_numbers_and_sip_addresses() -> None:
    assert "<Dial><Number>+15557654321</Number></Dial>" in twiml.dial_twiml(" +15557654321 ")
    assert "<Dial><Sip>sip:desk@example.com</Sip></Dial>" in twiml.dial_twiml(
        "sip:desk@example.com"
    )
    for bad in ("5557654321", "+0123", "sip:", "sip:a b", "desk@example.com"):
        with pytest.raises(ValueError, match=r"E\.164"):
            twiml.dial_twiml(bad)


class Api:
    """Twilio's API for a call in progress, in memory: records redirects, or refuses them."""

    def __init__(self, refusal: str | None = None) -> None:
        self.refusal = refusal
        self.redirects: list[tuple[str, str, str]] = []

    async def redirect(self, account_sid: str, call_sid: str, twiml: str) -> None:
        await trio.sleep(0.2)  # a request's round trip
        if self.refusal is not None:
            raise TwilioApiError(self.refusal)
        self.redirects.append((account_sid, call_sid, twiml))


async def test_the_line_plays_to_the_end_then_twilio_dials_and_the_stream_ends(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    api = Api()
    async with open_call(
        Desk, speech.engines(), speech=speech, settings=SETTINGS, twilio_api=api
    ) as fake:
        await fake.say("I need to speak to someone")
        said = len(fake.played)
        with trio.fail_after(30):
            await fake.closed.wait()
    assert speech.spoken == ["One moment.", "Let me put you through to a colleague."]
    line = sum(len(p.audio) for p in fake.played[said:]) / 8000
    assert line >= speech.tts.duration("Let me put you through to a colleague.") - 0.05
    [(account, call, twiml)] = api.redirects
    assert (account, call) == (fake.account_sid, fake.call_sid)
    assert "<Dial><Number>+15557654321</Number></Dial>" in twiml
    assert fake.result is not None
    assert fake.result.reason == "transferred to +15557654321"


async def test_a_refused_transfer_reaches_the_conversation_and_the_call_goes_on(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    made: list[Desk] = []

    def make() -> Desk:
        made.append(Desk())
        return made[-1]

    api = Api(refusal="Twilio refused the call (HTTP 400, error 21211): Invalid 'To' Phone Number")
    async with open_call(
        make, speech.engines(), speech=speech, settings=SETTINGS, twilio_api=api
    ) as fake:
        await fake.say("I need to speak to someone")
        await fake.wait_for(
            lambda: Desk.transfer_failed_message.split(".")[0] + "." in speech.spoken
        )
        await fake.wait_for_bot_to_finish()
        assert not fake.closed.is_set()
    [failure] = made[0].failures
    assert "error 21211" in failure
    assert speech.spoken[:2] == ["One moment.", "Let me put you through to a colleague."]


def test_twilio_api_updates_the_call_with_the_twiml(api: FakeTwilioApi) -> None:
    api.status = 200
    dial = twiml.dial_twiml("+15557654321")
    TwilioApi(TOKEN, http_client=LocalTwilio(api.url)).redirect_blocking(ACCOUNT, CALL_SID, dial)
    [request] = api.requests
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json"
    assert request["form"] == {"Twiml": dial}
    api.status = 404
    api.body = {"code": 20404, "message": "The requested resource was not found", "status": 404}
    with pytest.raises(TwilioApiError, match="HTTP 404, error 20404"):
        TwilioApi(TOKEN, http_client=LocalTwilio(api.url)).redirect_blocking(
            ACCOUNT, CALL_SID, dial
        )


async def test_no_api_access_or_a_bad_number_is_a_clear_error(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    made: list[Desk] = []
    for to in ("+15557654321", "front desk"):

        def make(to: str = to) -> Desk:
            made.append(Desk(to))
            return made[-1]

        async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
            await fake.say("I need to speak to someone")
            await fake.wait_for(lambda: bool(made[-1].failures))
    assert "set TWILIO_AUTH_TOKEN" in made[0].failures[0]
    assert "expected a phone number in E.164 form" in made[1].failures[0]
    with pytest.raises(RuntimeError, match="once the call has started"):
        Desk().transfer("+15557654321")


# --------------------------------------------------------------------------------------------
# Who answered an outbound call (answering-machine detection)


async def test_a_machine_gets_a_message_after_the_beep_and_the_call_ends(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    from phoneactors.call_control import CallDirectory

    class Caller(Conversation):
        greeting = "Hello, this is the library calling."

        async def on_answered_by(self, answered_by: str) -> str | None:
            if answered_by.startswith("machine_end"):
                self.hang_up()
                return "Your books are ready. Goodbye."
            return None

    directory = CallDirectory()
    made: list[Caller] = []

    def make() -> Caller:
        made.append(Caller())
        return made[-1]

    assert not directory.answered("CAearly", "human")  # no such call yet: kept for it
    async with open_call(
        make, speech.engines(), speech=speech, settings=SETTINGS, directory=directory
    ) as fake:
        await fake.wait_for(lambda: bool(made))
        await fake.wait_for_bot_to_finish()
        assert directory.answered(fake.call_sid, "machine_end_beep")
        await fake.closed.wait()
    assert made[0].answered_by == "machine_end_beep"
    assert speech.spoken[-2:] == ["Your books are ready.", "Goodbye."]
    assert fake.result is not None
    assert fake.result.reason == "conversation hung up"
    assert not directory.answered(fake.call_sid, "human")  # the call has left


async def test_who_answered_before_the_stream_started_reaches_the_call(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    from phoneactors.call_control import CallDirectory

    directory = CallDirectory()
    made: list[Conversation] = []

    def make() -> Conversation:
        made.append(Desk())
        return made[-1]

    sid = "CA" + "7" * 32
    assert not directory.answered(sid, "human")
    async with open_call(
        make, speech.engines(), speech=speech, settings=SETTINGS, directory=directory, call_sid=sid
    ) as fake:
        await fake.wait_for(lambda: bool(made) and made[0].answered_by == "human")
