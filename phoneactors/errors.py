"""The one exception hierarchy of phoneactors.

::

    PhoneActorsError            root: catch this to catch everything we raise
    ├── ProtocolError           the peer (Twilio, or whoever is on the socket) sent something wrong
    ├── ConfigurationError      a bad option, a missing model, an engine whose package is absent
    │   └── ModelNotFoundError  a named model is not on this machine (says how to get it)
    ├── EngineError             a speech engine failed while a call was running
    ├── ReplyError              the user's ``Conversation`` failed (raised, timed out, bad type)
    ├── TwilioApiError          Twilio's REST API refused a request or could not be reached
    └── SocketClosed            the call's websocket is gone (not a failure: how calls end)

``ProtocolError`` is always the other side's fault; every other class is ours or our user's.
Each message names what went wrong precisely enough to act on it.
"""

from __future__ import annotations


class PhoneActorsError(Exception):
    """Root of every exception phoneactors raises on purpose."""


class ProtocolError(PhoneActorsError):
    """The peer sent a message that does not follow the Twilio Media Streams protocol."""


class ConfigurationError(PhoneActorsError):
    """Something about how phoneactors was set up is wrong; raised at start-up, not mid-call."""


class ModelNotFoundError(ConfigurationError):
    """A speech model was asked for that is not on this machine."""


class EngineError(PhoneActorsError):
    """A speech engine (VAD, STT or TTS) failed while serving a call."""


class ReplyError(PhoneActorsError):
    """The user's ``Conversation`` raised, ran past its timeout, or returned the wrong type."""


class SocketClosed(PhoneActorsError):
    """The call's websocket closed: raised by a ``CallSocket``'s ``receive`` and ``send``."""


class TwilioApiError(PhoneActorsError):
    """Twilio's REST API refused the request, or could not be reached."""
