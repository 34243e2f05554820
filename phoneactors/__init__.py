"""phoneactors: answer real phone calls with a text-to-text function.

Subclass :class:`Conversation`, override ``reply``, run ``python -m phoneactors``. Importing the
package does nothing else: no models load, no logging is configured.
"""

from __future__ import annotations

from .call import CallResult as CallResult
from .call import CallSettings as CallSettings
from .call import run_call as run_call
from .conversation import CallInfo as CallInfo
from .conversation import Clip as Clip
from .conversation import Conversation as Conversation
from .conversation import Interruption as Interruption
from .conversation import Parrot as Parrot
from .conversation import TurnSoFar as TurnSoFar
from .engines import Engines as Engines
from .engines import SpeechToText as SpeechToText
from .engines import TextToSpeech as TextToSpeech
from .engines import VoiceActivityDetector as VoiceActivityDetector
from .engines import VoiceActivityEngine as VoiceActivityEngine
from .errors import ConfigurationError as ConfigurationError
from .errors import EngineError as EngineError
from .errors import ModelNotFoundError as ModelNotFoundError
from .errors import PhoneActorsError as PhoneActorsError
from .errors import ProtocolError as ProtocolError
from .errors import ReplyError as ReplyError
from .errors import SocketClosed as SocketClosed
from .errors import TwilioApiError as TwilioApiError
from .history import History as History
from .history import Turn as Turn
from .segmenter import SegmenterSettings as SegmenterSettings
from .transport import CallSocket as CallSocket

__version__ = "0.1.0"

__all__ = [
    "CallInfo",
    "CallResult",
    "CallSettings",
    "CallSocket",
    "Clip",
    "ConfigurationError",
    "Conversation",
    "EngineError",
    "Engines",
    "History",
    "Interruption",
    "ModelNotFoundError",
    "Parrot",
    "PhoneActorsError",
    "ProtocolError",
    "ReplyError",
    "SegmenterSettings",
    "SocketClosed",
    "SpeechToText",
    "TextToSpeech",
    "Turn",
    "TurnSoFar",
    "TwilioApiError",
    "VoiceActivityDetector",
    "VoiceActivityEngine",
    "run_call",
]
