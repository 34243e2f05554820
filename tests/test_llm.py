"""The LLM assistant against a fake OpenAI-compatible server: streamed sentences, honest history,
a stream that breaks, an interruption mid-stream, and tool calls that act on the call."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import trio
from trio.testing import MockClock

openai = pytest.importorskip("openai", reason="the llm extra (openai) is not installed")

from phoneactors.call import CallSettings  # noqa: E402
from phoneactors.conversation import CallInfo  # noqa: E402
from phoneactors.errors import ConfigurationError  # noqa: E402
from phoneactors.llm import Assistant, assistant  # noqa: E402
from phoneactors.llm_testing import BREAK, FakeChatModel, say, tool_call  # noqa: E402
from phoneactors.testing import FakeSpeech, open_call  # noqa: E402

SETTINGS = CallSettings(idle_timeout=None)

# openai's stream stops reading its server-sent events at [DONE] without closing the async
# generators under it; trio then warns as it finalizes them (asyncio stays quiet). Harmless, and
# not ours to fix: a ResourceWarning, which Python shows only in development mode.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def assistant_of(model: FakeChatModel, **options: Any) -> Any:
    made: list[Assistant] = []

    def make(call: CallInfo) -> Assistant:
        made.append(Assistant(model.client(), model="m", greeting=None, **options))
        return made[-1]

    return made, make


async def test_sentences_are_spoken_while_the_rest_is_generated_and_history_is_the_prompt(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    model = FakeChatModel(
        say("Sure. The library opens at nine in the morning. It closes at five."),
        say("You are welcome."),
    )
    made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("when does the library open")
        await fake.wait_for(lambda: len(made[0].history) == 2)  # the whole reply has played
        first_audio = fake.played[0].start
        await fake.say("thank you")
        await fake.wait_for_bot_to_finish()
    assert speech.spoken[:3] == [
        "Sure.",
        "The library opens at nine in the morning.",
        "It closes at five.",
    ]
    assert first_audio < model.finished_at[0]  # "Sure." played while the rest was generating
    system, user = model.requests[0]["messages"]
    assert system["role"] == "system"
    assert user == {"role": "user", "content": "when does the library open"}
    assert [m["role"] for m in model.requests[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert model.requests[1]["messages"][2]["content"].startswith("Sure. The library opens")
    assert model.requests[0]["stream"] is True
    assert {t["function"]["name"] for t in model.requests[0]["tools"]} == {
        "hang_up",
        "transfer",
        "press_keys",
    }


async def test_a_stream_that_breaks_ends_in_the_apology_and_the_call_goes_on(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    model = FakeChatModel(
        [*say("Let me check that for you. Your order"), (0.1, BREAK)],
        say("Of course."),
    )
    made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("where is my order")
        await fake.wait_for(lambda: len(made[0].history) == 2)  # the apology has played
        await fake.say("can you try again")
        await fake.wait_for(lambda: "Of course." in speech.spoken)
    # What was said stays said, the apology follows, and the next turn is answered.
    assert speech.spoken == ["Let me check that for you.", made[0].apology, "Of course."]


async def test_an_interruption_stops_generation_and_the_history_keeps_what_was_heard(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    long = "This is a long answer that goes on. " * 6
    model = FakeChatModel(say(long, every=0.3), say("Okay."))
    made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("tell me everything")
        await fake.wait_for(lambda: bool(fake.played))
        await trio.sleep(1.0)
        await fake.say("stop please")
        await fake.wait_for(lambda: "Okay." in speech.spoken)
        await fake.wait_for_bot_to_finish()
    assert model.closed_early == 1  # generation was cancelled, not read to the end
    history = list(made[0].history)
    cut = history[1]
    assert cut.speaker == "bot"
    assert cut.interrupted
    assert cut.text
    assert long.startswith(cut.text)
    assert len(cut.text) < len(long.strip())
    assert model.requests[1]["messages"][2]["content"].endswith("[interrupted by the caller]")


async def test_tool_calls_hang_up_and_press_keys(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    model = FakeChatModel(
        [*say("Choosing billing."), *tool_call("press_keys", {"digits": "2#"})],
        [*say("Goodbye!"), *tool_call("hang_up", {})],
    )
    made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("billing please")
        await fake.wait_for(lambda: len(made[0].history) >= 3)  # the keys have played
        await fake.say("that is all bye")
        await fake.closed.wait()
    texts = [turn.text for turn in made[0].history]
    assert texts[:3] == ["billing please", "Choosing billing.", "[keys 2#]"]
    assert speech.spoken[-1] == "Goodbye!"
    assert fake.result is not None
    assert fake.result.reason == "conversation hung up"


async def test_a_transfer_the_model_asks_for_without_api_access_is_apologised_for(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    model = FakeChatModel(
        [*say("Putting you through."), *tool_call("transfer", {"to": "+15557654321"})]
    )
    _made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("a person please")
        await fake.wait_for(lambda: "Sorry, I cannot put you through right now." in speech.spoken)


async def test_the_lifespan_needs_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHONEACTORS_LLM_MODEL", raising=False)
    with pytest.raises(ConfigurationError, match="set PHONEACTORS_LLM_MODEL"):
        async with assistant():
            pass
    monkeypatch.setenv("PHONEACTORS_LLM_MODEL", "llama3.2")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with assistant() as make:
        made = make(CallInfo("CA1", "MZ1", "AC1"))
        assert isinstance(made, Assistant)
        assert made.model == "llama3.2"
        assert str(made.client.base_url) == "http://localhost:11434/v1/"


# --------------------------------------------------------------------------------------------
# Over real sockets: the server, its websocket, and an OpenAI-compatible HTTP server


@pytest.mark.e2e
async def test_the_assistant_lifespan_serves_a_call_from_a_model_over_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from phoneactors.conversation import open_conversations
    from phoneactors.server import ServerConfig, serve
    from phoneactors.testing import open_twilio_stream

    bodies: list[dict[str, Any]] = []

    class Model(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in ["We", "open", "at", "nine", "tomorrow.", "See", "you", "then."]:
                chunk = {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"content": word + " "}}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    model = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=model.serve_forever, args=(0.01,), daemon=True).start()
    monkeypatch.setenv("PHONEACTORS_LLM_MODEL", "local-model")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{model.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    speech = FakeSpeech()
    config = ServerConfig(port=0, call_settings=SETTINGS, records=None)
    try:
        with trio.fail_after(30):
            async with open_conversations(assistant) as factory, trio.open_nursery() as nursery:
                host, port = await nursery.start(serve, factory, speech.engines(), config)
                url = f"ws://{host}:{port}/stream"
                async with open_twilio_stream(url, voice=speech.caller_voice) as fake:
                    await fake.wait_for_bot_to_finish()  # the greeting
                    await fake.say("when do you open")
                    await fake.wait_for(lambda: "See you then." in speech.spoken)
                nursery.cancel_scope.cancel()
    finally:
        model.shutdown()
        model.server_close()
    assert speech.spoken == ["Hello, how can I help?", "We open at nine tomorrow.", "See you then."]
    [body] = bodies
    assert body["model"] == "local-model"
    assert body["messages"][-1] == {"role": "user", "content": "when do you open"}


async def test_a_slow_first_token_is_waited_for_within_the_reply_timeout(
    autojump_clock: MockClock, speech: FakeSpeech
) -> None:
    model = FakeChatModel([(8.0, {"content": "Found "}), *say("it. Your order ships today.")])
    made, make = assistant_of(model)
    async with open_call(make, speech.engines(), speech=speech, settings=SETTINGS) as fake:
        await fake.say("where is my order")
        asked = trio.current_time()
        await fake.wait_for(lambda: len(made[0].history) == 2)
    assert speech.spoken == ["Found it.", "Your order ships today."]  # no apology
    assert fake.played[0].start - asked >= 8.0


class _ScriptedModel:
    """An OpenAI-compatible HTTP server on a real socket, in a thread: each request gets the
    next script of (seconds to wait, delta or BREAK), sent as server-sent events."""

    def __init__(self, *scripts: list[tuple[float, Any]]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.scripts = list(scripts)
        self.bodies: list[dict[str, Any]] = []
        self.cut_by_client = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked: a dropped connection is an error

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                script = outer.scripts.pop(0)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for delay, delta in script:
                        time.sleep(delay)
                        if delta == BREAK:  # the connection drops mid-reply
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        chunk = {
                            "id": "c",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "m",
                            "choices": [{"index": 0, "delta": delta}],
                        }
                        self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    outer.cut_by_client += 1
                    self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
async def test_over_real_sockets_a_slow_token_a_broken_stream_an_interruption_and_a_tool() -> None:
    from phoneactors.server import ServerConfig, serve
    from phoneactors.testing import open_twilio_stream

    long = "Once upon a time there was a library with a very long story to tell. " * 3
    model = _ScriptedModel(
        [(1.0, {"content": "Let me "}), *say("check. Your order", every=0.05), (0.1, BREAK)],
        say(long, every=0.25),
        [*say("Okay. Goodbye!", every=0.05), *tool_call("hang_up")],
    )
    speech = FakeSpeech()
    config = ServerConfig(port=0, call_settings=SETTINGS, records=None)
    try:
        with trio.fail_after(60):
            async with (
                openai.AsyncOpenAI(base_url=model.url, api_key="k", max_retries=0) as client,
                trio.open_nursery() as nursery,
            ):
                made: list[Assistant] = []

                def make(call: CallInfo) -> Assistant:
                    made.append(Assistant(client, model="m", greeting=None))
                    return made[-1]

                host, port = await nursery.start(serve, make, speech.engines(), config)
                url = f"ws://{host}:{port}/stream"
                async with open_twilio_stream(url, voice=speech.caller_voice) as fake:
                    await fake.say("where is my order")  # slow first token, then it breaks
                    await fake.wait_for(lambda: made[0].apology in speech.spoken)
                    await fake.wait_for_bot_to_finish()
                    await fake.say("tell me a story")
                    await fake.wait_for(lambda: len(fake.played) > 0 and len(speech.spoken) > 3)
                    await trio.sleep(1.0)
                    await fake.say("stop")  # over the story: generation stops
                    await fake.closed.wait()  # "Okay. Goodbye!", then the tool hangs up
                nursery.cancel_scope.cancel()
    finally:
        model.close()
    assert speech.spoken[:2] == ["Let me check.", made[0].apology]
    assert speech.spoken[-2:] == ["Okay.", "Goodbye!"]  # then the server closed the call
    assert model.cut_by_client == 1  # the story's stream was closed by the client
    cut = [turn for turn in made[0].history if turn.interrupted]
    assert len(cut) == 1
    assert cut[0].text.startswith("Once upon a time")
    assert model.bodies[2]["messages"][-2]["content"].endswith("[interrupted by the caller]")
