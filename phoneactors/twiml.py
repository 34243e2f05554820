"""TwiML and request signatures: Twilio's webhook side, without I/O.

The voice webhook answers with TwiML (:func:`connect_stream_twiml` connects the call to our media
stream, :func:`say_and_hang_up_twiml` turns a caller away, :func:`dial_twiml` transfers the
call), and every webhook request and stream upgrade may be checked against Twilio's
``X-Twilio-Signature`` (:func:`request_is_signed`). Text that XML cannot carry (control
characters, lone surrogates) raises ``ValueError``: our mistake, not the peer's.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from twilio.request_validator import RequestValidator

__all__ = ["connect_stream_twiml", "dial_twiml", "request_is_signed", "say_and_hang_up_twiml"]

_EMPTY: Final[Mapping[str, str]] = types.MappingProxyType({})

_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'


_XML_INVALID: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry, not even as character references."""


def _xml_text(text: str, what: str) -> str:
    bad = _XML_INVALID.search(text)
    if bad is not None:
        raise ValueError(f"{what} contains {bad.group()!r}, which XML cannot carry")
    return text


def _attr(text: str, what: str) -> str:
    return quoteattr(_xml_text(text, what))  # also turns tabs and newlines into references


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str] = _EMPTY) -> str:
    """TwiML that connects the call to a bidirectional media stream at ``stream_url``.

    Each of ``parameters`` becomes a ``<Parameter>``; Twilio hands them back in
    ``start.customParameters``. Raises ``ValueError`` for text XML cannot carry (control
    characters, lone surrogates).
    """
    parts = [_XML_DECLARATION, "<Response><Connect><Stream url=", _attr(stream_url, "stream_url")]
    if parameters:
        parts.append(">")
        for name, value in parameters.items():
            parts.append(
                f"<Parameter name={_attr(name, 'parameter name')}"
                f" value={_attr(value, f'parameter {name!r}')}/>"
            )
        parts.append("</Stream>")
    else:
        parts.append("/>")
    parts.append("</Connect></Response>")
    return "".join(parts)


_NUMBER: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_SIP: Final = re.compile(r"sip:\S+", re.IGNORECASE)


def dial_twiml(to: str) -> str:
    """TwiML that hands the call to ``to``: a phone number in E.164 form (``+15551234567``) or
    a SIP address (``sip:desk@example.com``). Raises ``ValueError`` for anything else."""
    target = to.strip()
    if _NUMBER.fullmatch(target):
        element = f"<Number>{escape(target)}</Number>"
    elif _SIP.fullmatch(target):
        element = f"<Sip>{escape(_xml_text(target, 'SIP address'))}</Sip>"
    else:
        raise ValueError(
            f"transfer to {to!r}: expected a phone number in E.164 form (+15551234567) or a "
            "SIP address (sip:desk@example.com)"
        )
    return f"{_XML_DECLARATION}<Response><Dial>{element}</Dial></Response>"


def say_and_hang_up_twiml(message: str) -> str:
    """TwiML that speaks ``message`` and hangs up (used when the line is busy)."""
    text = escape(_xml_text(message, "message"))
    return f"{_XML_DECLARATION}<Response><Say>{text}</Say><Hangup/></Response>"


def request_is_signed(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) is Twilio's for this request.

    ``url`` is the full URL Twilio requested, ``params`` the POST form fields (empty for the
    websocket upgrade). A missing or empty signature or auth token gives ``False``; this never
    raises.
    """
    if not signature or not auth_token:
        return False
    try:
        return bool(RequestValidator(auth_token).validate(url, params, signature))
    except Exception:
        return False
