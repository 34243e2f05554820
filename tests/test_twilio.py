"""Tests for the sans-IO Twilio Media Streams module (no event loop anywhere here)."""

from __future__ import annotations

import base64
import copy
import json
import types
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

import phoneactors.twilio_parse as twilio_module
from phoneactors.errors import ProtocolError
from phoneactors.twilio import (
    DTMF_DIGITS,
    Connected,
    Dtmf,
    InboundEvent,
    Mark,
    Media,
    MediaFormat,
    OutboundEvent,
    SendClear,
    SendMark,
    SendMedia,
    Start,
    Stop,
    encode_inbound,
    parse_event,
    parse_outbound,
    serialize,
)
from phoneactors.twiml import connect_stream_twiml, request_is_signed, say_and_hang_up_twiml

# The messages of design.md §3, with the elisions filled in.
FRAME = bytes(range(96, 256))  # 160 bytes = 20 ms
FRAME_B64 = base64.b64encode(FRAME).decode()

CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ123","start":{"accountSid":"AC123",'
    '"streamSid":"MZ123","callSid":"CA123","tracks":["inbound"],'
    '"customParameters":{"caller":"+15550100"},'
    '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":"3","streamSid":"MZ123","media":{"track":"inbound",'
    f'"chunk":"1","timestamp":"5","payload":"{FRAME_B64}"}}}}'
)
DTMF = (
    '{"event":"dtmf","sequenceNumber":"5","streamSid":"MZ123",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
MARK = '{"event":"mark","sequenceNumber":"4","streamSid":"MZ123","mark":{"name":"label"}}'
STOP = (
    '{"event":"stop","sequenceNumber":"5","streamSid":"MZ123",'
    '"stop":{"accountSid":"AC123","callSid":"CA123"}}'
)

EXPECTED: dict[str, InboundEvent] = {
    CONNECTED: Connected("Call", "1.0.0"),
    START: Start(
        1,
        "MZ123",
        "CA123",
        "AC123",
        ("inbound",),
        {"caller": "+15550100"},
        MediaFormat("audio/x-mulaw", 8000, 1),
    ),
    MEDIA: Media(3, "MZ123", "inbound", 1, 5, FRAME),
    DTMF: Dtmf(5, "MZ123", "inbound_track", "1"),
    MARK: Mark(4, "MZ123", "label"),
    STOP: Stop(5, "MZ123", "CA123", "AC123"),
}
SAMPLES = list(EXPECTED)

_DELETE = object()


def mutate(message: str, path: str, value: object = _DELETE) -> str:
    """``message`` with the dotted ``path`` deleted or set to ``value``."""
    obj = json.loads(message)
    *parents, last = path.split(".")
    target = obj
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return json.dumps(obj)


def protocol_error(message: str | bytes, **kwargs: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_event(message, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# Parsing the real messages


@pytest.mark.parametrize("message", SAMPLES)
def test_parse_design_examples(message: str) -> None:
    assert parse_event(message) == EXPECTED[message]
    assert parse_event(message.encode()) == EXPECTED[message]


def test_start_details() -> None:
    start = parse_event(START)
    assert isinstance(start, Start)
    assert start.custom_parameters["caller"] == "+15550100"
    assert isinstance(start.custom_parameters, types.MappingProxyType)
    with pytest.raises(TypeError):
        start.custom_parameters["caller"] = "x"  # type: ignore[index]
    assert hash(start) == hash(EXPECTED[START])  # hashable although it holds a mapping


def test_start_copies_custom_parameters() -> None:
    params = {"a": "1"}
    start = Start(1, "MZ", "CA", "AC", custom_parameters=params)
    params["a"] = "2"
    assert start.custom_parameters == {"a": "1"}
    assert Start(1, "MZ", "CA", "AC").custom_parameters == {}


def test_events_are_frozen() -> None:
    media = parse_event(MEDIA)
    assert isinstance(media, Media)
    with pytest.raises(AttributeError):
        media.stream_sid = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("message", "path", "default"),
    [
        (START, "start.tracks", ("tracks", ("inbound",))),
        (START, "start.customParameters", ("custom_parameters", {})),
        (
            START,
            "start.mediaFormat",
            ("media_format", MediaFormat("audio/x-mulaw", 8000, 1)),
        ),
        (START, "start.streamSid", ("stream_sid", "MZ123")),
        (MEDIA, "media.track", ("track", "inbound")),
        (DTMF, "dtmf.track", ("track", "inbound_track")),
    ],
)
def test_optional_fields_get_defaults(message: str, path: str, default: tuple[str, object]) -> None:
    attribute, value = default
    assert getattr(parse_event(mutate(message, path)), attribute) == value


@pytest.mark.parametrize(
    ("path", "value", "attribute", "expected"),
    [
        ("sequenceNumber", 3, "sequence_number", 3),
        ("media.chunk", 0, "chunk", 0),
        ("media.timestamp", "000120", "timestamp", 120),
        ("sequenceNumber", str(2**63 - 1), "sequence_number", 2**63 - 1),
    ],
)
def test_numbers_as_ints_or_decimal_strings(
    path: str, value: object, attribute: str, expected: int
) -> None:
    assert getattr(parse_event(mutate(MEDIA, path, value)), attribute) == expected


def test_media_format_numbers_as_strings() -> None:
    event = parse_event(mutate(START, "start.mediaFormat.sampleRate", "16000"))
    assert isinstance(event, Start)
    assert event.media_format.sample_rate == 16000


@pytest.mark.parametrize("message", SAMPLES)
def test_unknown_keys_are_ignored(message: str) -> None:
    obj = json.loads(message)
    obj["future"] = {"x": [1, 2]}
    for value in obj.values():
        if isinstance(value, dict):
            value["alsoNew"] = None
    assert parse_event(json.dumps(obj)) == EXPECTED[message]


@pytest.mark.parametrize("digit", sorted(DTMF_DIGITS))
def test_every_dtmf_digit(digit: str) -> None:
    assert parse_event(mutate(DTMF, "dtmf.digit", digit)) == Dtmf(
        5, "MZ123", "inbound_track", digit
    )


@pytest.mark.parametrize("digit", ["", "a", "E", "w", "12", "\uff11", " 1"])
def test_bad_dtmf_digit(digit: str) -> None:
    assert protocol_error(mutate(DTMF, "dtmf.digit", digit)).startswith("dtmf.digit: expected")


# --------------------------------------------------------------------------------------------
# Malformed messages

REQUIRED = [
    (CONNECTED, "protocol"),
    (CONNECTED, "version"),
    (START, "sequenceNumber"),
    (START, "streamSid"),
    (START, "start"),
    (START, "start.callSid"),
    (START, "start.accountSid"),
    (START, "start.mediaFormat.encoding"),
    (START, "start.mediaFormat.sampleRate"),
    (START, "start.mediaFormat.channels"),
    (MEDIA, "sequenceNumber"),
    (MEDIA, "streamSid"),
    (MEDIA, "media"),
    (MEDIA, "media.chunk"),
    (MEDIA, "media.timestamp"),
    (MEDIA, "media.payload"),
    (DTMF, "sequenceNumber"),
    (DTMF, "streamSid"),
    (DTMF, "dtmf"),
    (DTMF, "dtmf.digit"),
    (MARK, "sequenceNumber"),
    (MARK, "streamSid"),
    (MARK, "mark"),
    (MARK, "mark.name"),
    (STOP, "sequenceNumber"),
    (STOP, "streamSid"),
    (STOP, "stop"),
    (STOP, "stop.callSid"),
    (STOP, "stop.accountSid"),
]


@pytest.mark.parametrize(("message", "path"), REQUIRED)
def test_missing_required_field(message: str, path: str) -> None:
    assert protocol_error(mutate(message, path)) == f"{path}: missing"


STRING_FIELDS = [
    (CONNECTED, "protocol"),
    (CONNECTED, "version"),
    (START, "streamSid"),
    (START, "start.callSid"),
    (START, "start.accountSid"),
    (START, "start.streamSid"),
    (START, "start.mediaFormat.encoding"),
    (MEDIA, "streamSid"),
    (MEDIA, "media.track"),
    (DTMF, "dtmf.track"),
    (DTMF, "dtmf.digit"),
    (MARK, "mark.name"),
    (STOP, "stop.callSid"),
    (STOP, "stop.accountSid"),
]
NUMBER_FIELDS = [
    (START, "sequenceNumber"),
    (START, "start.mediaFormat.sampleRate"),
    (START, "start.mediaFormat.channels"),
    (MEDIA, "sequenceNumber"),
    (MEDIA, "media.chunk"),
    (MEDIA, "media.timestamp"),
    (DTMF, "sequenceNumber"),
    (MARK, "sequenceNumber"),
    (STOP, "sequenceNumber"),
]
OBJECT_FIELDS = [
    (START, "start"),
    (START, "start.mediaFormat"),
    (START, "start.customParameters"),
    (MEDIA, "media"),
    (DTMF, "dtmf"),
    (MARK, "mark"),
    (STOP, "stop"),
]


@pytest.mark.parametrize(("message", "path"), STRING_FIELDS)
@pytest.mark.parametrize("value", [12, None, True, ["a"], {"a": "b"}])
def test_string_field_of_wrong_type(message: str, path: str, value: object) -> None:
    assert protocol_error(mutate(message, path, value)).startswith(f"{path}: expected a string")


@pytest.mark.parametrize(("message", "path"), NUMBER_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        12.5,
        1.0,
        None,
        True,
        "",
        "-1",
        "1e3",
        " 1",
        "0x10",
        "1_000",
        "\u0661\u0662",
        "\u00b2",
        [1],
        {},
    ],
)
def test_number_field_of_wrong_type(message: str, path: str, value: object) -> None:
    problem = protocol_error(mutate(message, path, value))
    assert problem.startswith(f"{path}: expected a decimal string, got ")


def test_number_error_message() -> None:
    problem = protocol_error(mutate(MEDIA, "sequenceNumber", 12.5))
    assert problem == "sequenceNumber: expected a decimal string, got 12.5"


@pytest.mark.parametrize("value", [-1, 2**63, str(2**63), "9" * 19, "9" * 20, "9" * 5000])
def test_number_out_of_range(value: object) -> None:
    problem = protocol_error(mutate(MEDIA, "media.timestamp", value))
    assert problem.startswith("media.timestamp: ")
    assert len(problem) < 120


@pytest.mark.parametrize("field", ["sampleRate", "channels"])
def test_media_format_zero(field: str) -> None:
    problem = protocol_error(mutate(START, f"start.mediaFormat.{field}", 0))
    assert problem == f"start.mediaFormat.{field}: expected a positive number, got 0"


@pytest.mark.parametrize(("message", "path"), OBJECT_FIELDS)
@pytest.mark.parametrize("value", ["x", 1, None, [], True])
def test_object_field_of_wrong_type(message: str, path: str, value: object) -> None:
    assert protocol_error(mutate(message, path, value)).startswith(f"{path}: expected an object")


def test_bad_tracks() -> None:
    assert protocol_error(mutate(START, "start.tracks", "inbound")).startswith(
        "start.tracks: expected an array of strings"
    )
    assert protocol_error(mutate(START, "start.tracks", ["inbound", 3])) == (
        "start.tracks[1]: expected a string, got 3"
    )


def test_bad_custom_parameter_value() -> None:
    problem = protocol_error(mutate(START, "start.customParameters", {"caller": 5}))
    assert problem == "start.customParameters['caller']: expected a string, got 5"


def test_mismatched_stream_sids() -> None:
    problem = protocol_error(mutate(START, "start.streamSid", "MZother"))
    assert problem.startswith("start.streamSid: ")


def test_event_field() -> None:
    assert protocol_error('{"event":"foo"}') == "unknown event 'foo'"
    assert protocol_error('{"event":"clear","streamSid":"MZ"}') == "unknown event 'clear'"
    assert protocol_error('{"streamSid":"MZ"}') == "event: missing"
    assert protocol_error('{"event":3}') == "event: expected a string, got 3"
    assert protocol_error('{"event":["media"]}') == "event: expected a string, got an array"
    long_name = protocol_error(json.dumps({"event": "x" * 10_000}))
    assert len(long_name) < 80


@pytest.mark.parametrize(
    "payload",
    ["!!!!", "AAA", "AA=A", "A===", "=AAA", "AAAA\n", "AA AA", "AAAA=", "AAAA====", "é", "AAAAA"],
)
def test_invalid_base64(payload: str) -> None:
    assert protocol_error(mutate(MEDIA, "media.payload", payload)) == (
        "media.payload: invalid base64"
    )


def test_payload_of_wrong_type() -> None:
    problem = protocol_error(mutate(MEDIA, "media.payload", 123))
    assert problem == "media.payload: expected a base64 string, got 123"


def test_payload_size_limit() -> None:
    def with_payload(size: int) -> str:
        return mutate(MEDIA, "media.payload", base64.b64encode(bytes(size)).decode())

    media = parse_event(with_payload(16000))
    assert isinstance(media, Media)
    assert len(media.payload) == 16000
    assert protocol_error(with_payload(16001)) == "media.payload: longer than 16000 bytes"
    assert protocol_error(with_payload(10**6)) == "media.payload: longer than 16000 bytes"
    assert protocol_error(with_payload(161), max_payload_bytes=160) == (
        "media.payload: longer than 160 bytes"
    )
    assert parse_event(with_payload(160), max_payload_bytes=160) == parse_event(with_payload(160))
    assert parse_event(mutate(MEDIA, "media.payload", "")) == Media(
        3, "MZ123", "inbound", 1, 5, b""
    )


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "{",
        "not json",
        '{"event":"media"',
        '{"event":"connected","protocol":"Call","version":"1.0.0"} trailing',
        "\ufeff" + CONNECTED,
        '{"a":' + "1" * 5000 + "}",
    ],
)
def test_not_json(message: str) -> None:
    assert protocol_error(message).startswith("message: not valid JSON")


@pytest.mark.parametrize(
    ("message", "described"),
    [("[]", "an array"), ('"media"', "'media'"), ("1", "1"), ("null", "null"), ("true", "true")],
)
def test_json_that_is_not_an_object(message: str, described: str) -> None:
    assert protocol_error(message) == f"message: expected a JSON object, got {described}"


@pytest.mark.parametrize(
    "message", [b"\xff", b'{"event":"\xc3"}', CONNECTED.encode("utf-16"), b"\xed\xa0\x80"]
)
def test_bytes_that_are_not_utf8(message: bytes) -> None:
    assert protocol_error(message) == "message: not valid UTF-8"


def test_deeply_nested() -> None:
    problem = protocol_error("[" * 100_000 + "]" * 100_000)
    assert problem.startswith("message: ")
    nested = '{"event":"connected","protocol":"Call","version":"1.0.0","x":'
    assert parse_event(nested + "[" * 50 + "]" * 50 + "}") == Connected("Call", "1.0.0")


# --------------------------------------------------------------------------------------------
# Us → Twilio


def test_serialize_exact() -> None:
    assert serialize("MZ123", SendMedia(FRAME)) == (
        f'{{"event":"media","streamSid":"MZ123","media":{{"payload":"{FRAME_B64}"}}}}'
    )
    assert serialize("MZ123", SendMark("label")) == (
        '{"event":"mark","streamSid":"MZ123","mark":{"name":"label"}}'
    )
    assert serialize("MZ123", SendClear()) == '{"event":"clear","streamSid":"MZ123"}'
    assert serialize("MZ123", SendMedia(b"")) == (
        '{"event":"media","streamSid":"MZ123","media":{"payload":""}}'
    )


def test_serialize_escapes() -> None:
    text = serialize('M"Z\\', SendMark('a"b\n'))
    assert json.loads(text) == {"event": "mark", "streamSid": 'M"Z\\', "mark": {"name": 'a"b\n'}}
    text = serialize('M"Z', SendMedia(b"\x00"))
    assert json.loads(text)["streamSid"] == 'M"Z'


def test_encoders_reject_events_of_the_other_direction() -> None:
    with pytest.raises(TypeError, match="not an event"):
        serialize("MZ", Mark(1, "MZ", "x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an event"):
        encode_inbound(SendClear())  # type: ignore[arg-type]


def test_parse_outbound() -> None:
    assert parse_outbound('{"event":"clear","streamSid":"MZ1"}') == ("MZ1", SendClear())
    assert parse_outbound(b'{"event":"mark","streamSid":"MZ1","mark":{"name":"n"}}') == (
        "MZ1",
        SendMark("n"),
    )
    assert parse_outbound(serialize("MZ1", SendMedia(FRAME))) == ("MZ1", SendMedia(FRAME))


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("nope", "message: not valid JSON"),
        (b"\x80", "message: not valid UTF-8"),
        ("[]", "message: expected a JSON object"),
        ('{"event":"start","streamSid":"MZ"}', "unknown event 'start'"),
        ('{"streamSid":"MZ"}', "event: missing"),
        ('{"event":"clear"}', "streamSid: missing"),
        ('{"event":"media","streamSid":"MZ"}', "media: missing"),
        ('{"event":"media","streamSid":"MZ","media":{}}', "media.payload: missing"),
        ('{"event":"media","streamSid":"MZ","media":{"payload":"@"}}', "media.payload: invalid"),
        ('{"event":"mark","streamSid":"MZ","mark":{"name":1}}', "mark.name: expected a string"),
    ],
)
def test_parse_outbound_errors(message: str | bytes, problem: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_outbound(message)
    assert str(info.value).startswith(problem)


# --------------------------------------------------------------------------------------------
# TwiML


def test_connect_stream_twiml() -> None:
    twiml = connect_stream_twiml("wss://example.com/stream", {"caller": "+15550100"})
    assert twiml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://example.com/stream"><Parameter name="caller" value="+15550100"/>'
        "</Stream></Connect></Response>"
    )
    bare = ET.fromstring(connect_stream_twiml("wss://example.com/stream"))
    stream = bare.find("Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://example.com/stream"
    assert list(stream) == []


def test_connect_stream_twiml_escaping() -> None:
    url = "wss://example.com/stream?a=1&b=\"2\"&c='3'<>"
    params = {'na"me<&': "v'a\"l<>&ue", "tab\there": "line\nbreak\r", "ünï": "☎ +1 (555)"}
    root = ET.fromstring(connect_stream_twiml(url, params))
    assert root.tag == "Response"
    stream = root.find("Connect/Stream")
    assert stream is not None
    assert stream.get("url") == url
    parsed = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert parsed == params


def test_twiml_rejects_text_xml_cannot_carry() -> None:
    with pytest.raises(ValueError, match="XML cannot carry"):
        connect_stream_twiml("wss://x/\x00")
    with pytest.raises(ValueError, match="XML cannot carry"):
        connect_stream_twiml("wss://x/", {"a": "\x1b"})
    with pytest.raises(ValueError, match="XML cannot carry"):
        say_and_hang_up_twiml("busy\ud800")


def test_say_and_hang_up_twiml() -> None:
    assert say_and_hang_up_twiml("Busy, call back later.") == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Say>Busy, call back later.</Say><Hangup/></Response>"
    )
    message = 'Tom & Jerry\'s <line> is "busy"'
    root = ET.fromstring(say_and_hang_up_twiml(message))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.findtext("Say") == message


xml_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\ufffe\uffff").filter(
        lambda c: c in "\t\n\r" or ord(c) >= 0x20
    ),
    max_size=20,
)


@settings(max_examples=100)
@given(url=xml_text, params=st.dictionaries(xml_text, xml_text, max_size=4))
def test_twiml_round_trips_through_xml(url: str, params: dict[str, str]) -> None:
    stream = ET.fromstring(connect_stream_twiml(url, params)).find("Connect/Stream")
    assert stream is not None
    assert stream.get("url") == url
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == params


@settings(max_examples=50)
@given(message=xml_text)
def test_say_round_trips_through_xml(message: str) -> None:
    # XML parsers normalise \r\n and lone \r in text content to \n.
    expected = message.replace("\r\n", "\n").replace("\r", "\n")
    assert (ET.fromstring(say_and_hang_up_twiml(message)).findtext("Say") or "") == expected


# --------------------------------------------------------------------------------------------
# Signatures

TOKEN = "12345678901234567890123456789012"
URL = "https://example.com/voice?x=1"
FORM = {"CallSid": "CA123", "From": "+15550100", "To": "+15550199", "Caller": "+15550100"}


def test_request_is_signed() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, FORM)
    assert request_is_signed(TOKEN, URL, FORM, signature)
    assert not request_is_signed("0" * 32, URL, FORM, signature)
    assert not request_is_signed(TOKEN, "https://example.com/other", FORM, signature)
    assert not request_is_signed(TOKEN, URL, {**FORM, "From": "+15550101"}, signature)
    assert not request_is_signed(TOKEN, URL, FORM, None)
    assert not request_is_signed(TOKEN, URL, FORM, "")
    assert not request_is_signed(TOKEN, URL, FORM, signature[:-2])
    assert not request_is_signed("", URL, FORM, signature)


def test_request_is_signed_websocket_upgrade() -> None:
    url = "wss://example.com/stream"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    assert request_is_signed(TOKEN, url, {}, signature)
    assert request_is_signed(TOKEN, "wss://example.com:443/stream", {}, signature)


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        ("https://example.com/", FORM, "é" * 28),
        ("not a url at all \x00", FORM, "abc"),
        ("http://[::1/", FORM, "abc"),
        ("https://example.com/", {"a": None}, "abc"),
        ("https://example.com/", {1: "x"}, "abc"),
    ],
)
def test_request_is_signed_never_raises(url: str, params: Any, signature: str) -> None:
    assert request_is_signed(TOKEN, url, params, signature) is False


# --------------------------------------------------------------------------------------------
# Properties

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_protocol_error(message: str | bytes) -> None:
    try:
        event = parse_event(message)
    except ProtocolError:
        return
    assert isinstance(event, Connected | Start | Media | Dtmf | Mark | Stop)


@FUZZ
@given(st.text())
def test_arbitrary_text(message: str) -> None:
    parses_or_protocol_error(message)


@FUZZ
@given(st.binary())
def test_arbitrary_bytes(message: bytes) -> None:
    parses_or_protocol_error(message)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
event_names = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear"])


@FUZZ
@given(json_values)
def test_arbitrary_json(value: object) -> None:
    parses_or_protocol_error(json.dumps(value))


@FUZZ
@given(event_names, st.dictionaries(st.sampled_from(sorted({*FORM, "a"})), json_values))
def test_arbitrary_objects_with_an_event_name(event: str, body: dict[str, object]) -> None:
    parses_or_protocol_error(json.dumps({**body, "event": event}))


def paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in a parsed JSON object."""
    found: list[tuple[str, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    return found


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_valid_events(message: str, data: st.DataObject) -> None:
    obj = json.loads(message)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(obj)))
        target = obj
        for key in path[:-1]:
            target = target[key]
            if not isinstance(target, dict):
                break
        else:
            if data.draw(st.booleans()):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = data.draw(json_values)
    parses_or_protocol_error(json.dumps(obj))
    parses_or_protocol_error(json.dumps(obj).encode())


ints = st.integers(0, 2**63 - 1)
sids = st.text(max_size=40)
media_formats = st.builds(MediaFormat, st.text(max_size=20), st.integers(1, 2**63 - 1), ints)
inbound_events = st.one_of(
    st.builds(Connected, sids, sids),
    st.builds(
        Start,
        ints,
        sids,
        sids,
        sids,
        st.lists(sids, max_size=3).map(tuple),
        st.dictionaries(sids, sids, max_size=3),
        media_formats.filter(lambda f: f.channels > 0),
    ),
    st.builds(Media, ints, sids, sids, ints, ints, st.binary(max_size=400)),
    st.builds(Dtmf, ints, sids, sids, st.sampled_from(sorted(DTMF_DIGITS))),
    st.builds(Mark, ints, sids, sids),
    st.builds(Stop, ints, sids, sids, sids),
)


@FUZZ
@given(inbound_events)
def test_encode_inbound_round_trip(event: InboundEvent) -> None:
    message = encode_inbound(event)
    assert parse_event(message) == event
    assert parse_event(message.encode()) == event


@FUZZ
@given(inbound_events)
def test_encode_inbound_speaks_twilios_json(event: InboundEvent) -> None:
    obj = json.loads(encode_inbound(event))
    if not isinstance(event, Connected):
        assert obj["sequenceNumber"] == str(event.sequence_number)
    if isinstance(event, Media):
        assert obj["media"]["chunk"] == str(event.chunk)
        assert obj["media"]["timestamp"] == str(event.timestamp)
        assert base64.b64decode(obj["media"]["payload"]) == event.payload


def test_encode_inbound_matches_design_examples() -> None:
    for message, event in EXPECTED.items():
        assert json.loads(encode_inbound(event)) == json.loads(message)


outbound_events: st.SearchStrategy[OutboundEvent] = st.one_of(
    st.builds(SendMedia, st.binary(max_size=400)),
    st.builds(SendMark, st.text()),
    st.just(SendClear()),
)


@FUZZ
@given(sids, outbound_events)
def test_serialize_round_trip(stream_sid: str, event: OutboundEvent) -> None:
    message = serialize(stream_sid, event)
    assert parse_outbound(message) == (stream_sid, event)
    assert parse_outbound(message.encode()) == (stream_sid, event)


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_events_are_never_misread(message: str, data: st.DataObject) -> None:
    """A parsed event always re-encodes to a message that parses to the same event."""
    obj = json.loads(message)
    path = data.draw(st.sampled_from(paths(obj)))
    mutated = copy.deepcopy(obj)
    target = mutated
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values)
    try:
        event = parse_event(json.dumps(mutated))
    except ProtocolError:
        return
    assert parse_event(encode_inbound(event)) == event


def test_public_api() -> None:
    import phoneactors.twilio as module

    for name in module.__all__:
        assert getattr(module, name) is not None
    assert isinstance(Start(1, "MZ", "CA", "AC").custom_parameters, Mapping)


# --------------------------------------------------------------------------------------------
# The shortcut for media messages

TWILIO_MEDIA = (
    '{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1",'
    f'"timestamp":"5","payload":"{FRAME_B64}"}},"streamSid":"MZ123"}}'
)
"""The same media message in the order Twilio writes its keys: ``streamSid`` last."""


def parse_general(message: str | bytes, max_payload_bytes: int = 16000) -> InboundEvent | str:
    """The general path's event, or its error message."""
    try:
        return twilio_module._parse_event(message, max_payload_bytes)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


def parse_public(message: str | bytes, max_payload_bytes: int = 16000) -> InboundEvent | str:
    try:
        return parse_event(message, max_payload_bytes=max_payload_bytes)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


def assert_paths_agree(message: str, max_payload_bytes: int = 16000) -> Media | None:
    """The shortcut returns nothing or what the general path returns; ``parse_event`` agrees."""
    fast = twilio_module._parse_media_fast(message, max_payload_bytes)
    general = parse_general(message, max_payload_bytes)
    if fast is not None:
        assert type(fast) is Media
        assert general == fast
        assert repr(general) == repr(fast)
    assert parse_public(message, max_payload_bytes) == general
    return fast


@pytest.mark.parametrize("message", [MEDIA, TWILIO_MEDIA])
def test_compact_media_messages_take_the_shortcut(message: str) -> None:
    assert assert_paths_agree(message) == EXPECTED[MEDIA]


@given(st.builds(Media, ints, sids, sids, ints, ints, st.binary(max_size=400)))
def test_encoded_media_takes_the_shortcut_when_it_can(event: Media) -> None:
    message = encode_inbound(event)
    fast = assert_paths_agree(message)
    text = event.stream_sid + event.track
    plain = all(c.isascii() and c.isprintable() and c not in '"\\' for c in text)
    if plain and max(event.sequence_number, event.chunk, event.timestamp) < 10**18:
        assert fast == event  # json.dumps escapes the rest, which the general path reads


def compact_media(
    fields: dict[str, str], *, sid_first: bool = True, extra: str = "", media_extra: str = ""
) -> str:
    """A media message from raw JSON texts (quotes and escapes included) of its fields."""
    media = ",".join(
        f'"{key}":{fields[key]}'
        for key in ("track", "chunk", "timestamp", "payload")
        if key in fields
    )
    sid = f'"streamSid":{fields["streamSid"]}' if "streamSid" in fields else ""
    head = f'{{"event":"media","sequenceNumber":{fields.get("sequenceNumber", chr(34) * 2)}'
    body = f'"media":{{{media}{media_extra}}}'
    parts = [head, sid, body] if sid_first else [head, body, sid]
    return ",".join(part for part in parts if part) + extra + "}"


def quoted(text: str) -> str:
    return f'"{text}"'


plain_texts = st.text(
    st.characters(codec="utf-8", exclude_characters='"\\').filter(lambda c: c >= " "),
    max_size=12,
)
FIELDS: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    # field: (texts the shortcut may take, texts it must leave to the general path or get right)
    "sequenceNumber": (
        st.integers(0, 10**18 - 1).map(str) | st.from_regex(r"0{1,3}[0-9]{0,15}", fullmatch=True),
        st.sampled_from(["", "-1", "1.5", "1e3", " 1", "\u0661", "9" * 19, "1" * 19, "9" * 30])
        | st.integers(10**18, 10**20).map(str),
    ),
    "streamSid": (
        plain_texts,
        st.text(alphabet='MZ0"\\/\x00\x1f\x7f \u2028é\ud800', max_size=8)
        | st.sampled_from(["\\u004dZ", 'a\\"b', "\\\\", "\\n"]),
    ),
    "payload": (
        st.binary(max_size=200).map(lambda data: base64.b64encode(data).decode()),
        st.text(alphabet="AQgw+/=", max_size=12)
        | st.text(alphabet='ABCabc019+/=\\"\n é-_', max_size=12)
        | st.sampled_from(["AAAA====", "AAAA=", "AA==", "A===", "AB\\/C", "AAA\\u0041", "\\"]),
    ),
}
FIELDS["track"] = FIELDS["streamSid"]
FIELDS["chunk"] = FIELDS["timestamp"] = FIELDS["sequenceNumber"]
FIELD_KINDS = st.sampled_from(["plain"] * 24 + ["missing", "not a string", "odd", "odd"])
NOT_A_STRING = st.sampled_from(["5", "null", "true", "[]", "{}", '"\\u0031"'])


@FUZZ
@given(
    data=st.data(),
    sid_first=st.booleans(),
    extra=st.sampled_from([""] * 8 + [',"streamSid":"MZ9"', ',"x":1', " ", ',"streamSid":1']),
    media_extra=st.sampled_from([""] * 8 + [',"payload":"AAAA"', ',"track":"x"', ',"y":null']),
    max_payload_bytes=st.sampled_from([16000] * 4 + [0, 1, 3, 160]),
)
def test_shortcut_agrees_with_the_general_path(
    data: st.DataObject, sid_first: bool, extra: str, media_extra: str, max_payload_bytes: int
) -> None:
    """Messages close to Twilio's: each field usually plain, now and then odd or missing."""
    fields: dict[str, str] = {}
    for name, (plain, odd) in FIELDS.items():
        match data.draw(FIELD_KINDS, label=f"{name} kind"):
            case "missing":
                continue
            case "not a string":
                fields[name] = data.draw(NOT_A_STRING, label=name)
            case "odd":
                fields[name] = quoted(data.draw(odd, label=name))
            case _:
                fields[name] = quoted(data.draw(plain, label=name))
    message = compact_media(fields, sid_first=sid_first, extra=extra, media_extra=media_extra)
    assert_paths_agree(message, max_payload_bytes)


@FUZZ
@given(st.sampled_from([MEDIA, TWILIO_MEDIA]), st.data())
def test_shortcut_agrees_on_mutated_media_text(message: str, data: st.DataObject) -> None:
    """Any character of a compact media message replaced, deleted or doubled."""
    text = message
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        how = data.draw(st.sampled_from(["replace", "delete", "double"]))
        if how == "replace":
            text = text[:i] + data.draw(st.characters(codec="utf-8")) + text[i + 1 :]
        elif how == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + text[i] + text[i:]
    assert_paths_agree(text)
    assert_paths_agree(text, 160)


@pytest.mark.parametrize(
    "message",
    [
        MEDIA.replace('"streamSid":"MZ123",', '"streamSid":"MZ1","streamSid":"MZ123",'),
        TWILIO_MEDIA.replace("}}", '},"streamSid":"MZ0"}').replace('"3",', '"3","streamSid":"MZ",'),
        MEDIA.replace('"MZ123"', '"MZ\\u0031"'),
        MEDIA.replace('"inbound"', '"in\\tbound"'),
        MEDIA.replace(FRAME_B64[:4], FRAME_B64[:2] + "\\/" + FRAME_B64[3]),
        MEDIA.replace(FRAME_B64, "AAAA===="),
        MEDIA.replace(FRAME_B64, "AAAA="),
        MEDIA.replace(FRAME_B64, "AA\nAA=="),
        MEDIA.replace('"3"', '"' + "9" * 19 + '"'),
        MEDIA.replace('"3"', '"' + "1" * 19 + '"'),
        MEDIA.replace('"3"', '"' + "9" * 20 + '"'),
        MEDIA.replace('"3"', '"00000000000000000003"'),
        MEDIA.replace('"MZ123"', '"MZ\x01"'),
        MEDIA.replace('"MZ123"', '"MZ\x7f\u2028\ud800é"'),
        MEDIA.replace('"track":"inbound",', ""),
        MEDIA.replace("}}", "} }"),
        MEDIA + "\n",
    ],
)
def test_shortcut_corner_cases(message: str) -> None:
    assert_paths_agree(message)
    assert_paths_agree(message, 160)
    assert_paths_agree(message, 159)


def test_shortcut_keeps_the_payload_limit() -> None:
    for size in range(14):
        message = MEDIA.replace(FRAME_B64, base64.b64encode(bytes(size)).decode())
        for limit in range(14):
            assert (assert_paths_agree(message, limit) is not None) == (size <= limit)


def test_shortcut_takes_only_what_it_can_read_alone() -> None:
    fast = twilio_module._parse_media_fast
    assert fast(MEDIA.replace('"MZ123"', '"MZ\\u0031"'), 16000) is None  # an escape
    assert fast(MEDIA.replace('"3"', '"' + "1" * 19 + '"'), 16000) is None  # 19 digits
    assert fast(MEDIA.replace('"track":"inbound",', ""), 16000) is None  # default track
    assert fast(MEDIA, 159) is None  # over the limit: the general path says why
    assert parse_event(MEDIA.replace('"MZ123"', '"MZ\\u0031"')) == Media(
        3, "MZ1", "inbound", 1, 5, FRAME
    )
