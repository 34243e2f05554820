"""What the command line builds from its parsed options (:mod:`phoneactors.cli.options`): the
conversation named by ``--conversation``, the engines, and the call settings."""

from __future__ import annotations

import argparse
import importlib

from ..call import CallSettings
from ..conversation import Conversation, as_factory, is_lifespan
from ..engines import Engines
from ..errors import ConfigurationError
from ..segmenter import SegmenterSettings

__all__ = ["call_settings_from_args", "engines_from_args", "load_conversation"]


def load_conversation(spec: str) -> object:
    """Import ``module:name`` (``name`` may be dotted) and check it makes conversations: a
    :class:`Conversation` subclass, a factory function (given the call's
    :class:`~phoneactors.conversation.CallInfo`, or nothing), or a lifespan (an
    ``@asynccontextmanager`` function yielding either; see
    :func:`~phoneactors.conversation.open_conversations`).

    Raises :class:`~phoneactors.errors.ConfigurationError` saying what is wrong; an exception
    raised while the module itself runs is chained as the cause.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name.strip() or not attribute.strip():
        raise ConfigurationError(
            f"--conversation {spec!r}: expected module:Class, for example mybot:Parrot"
        )
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ConfigurationError(
                f"--conversation {spec!r}: there is no module named {exc.name!r} (looked in "
                "the current directory and on the Python path)"
            ) from None
        raise ConfigurationError(
            f"--conversation {spec!r}: importing {module_name!r} failed: {exc}"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"--conversation {spec!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"--conversation {spec!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if is_lifespan(target):
        return target
    if isinstance(target, type) and issubclass(target, Conversation):
        return target
    if callable(target) and not isinstance(target, type):
        try:
            as_factory(target)
        except ConfigurationError as exc:
            raise ConfigurationError(f"--conversation {spec!r}: {exc}") from None
        return target
    raise ConfigurationError(
        f"--conversation {spec!r}: expected a subclass of phoneactors.Conversation, a function "
        f"that makes one, or an @asynccontextmanager lifespan that yields one; got {target!r}"
    )


def engines_from_args(args: argparse.Namespace) -> Engines:
    # Looked up at call time (not imported at the top) so that tests can swap it for fakes.
    from ..engines.registry import build_engines

    # The remote and coqui engines' options, the STT window and device and the VAD gate:
    # only when given.
    remote = (
        "stt_url",
        "tts_url",
        "tts_model",
        "remote_api_key_env",
        "stt_window",
        "stt_device",
        "vad_min_rms",
        "tts_language",
        "tts_device",
    )
    return build_engines(
        vad=args.vad,
        stt=args.stt,
        tts=args.tts,
        stt_model=args.stt_model,
        tts_voice=args.tts_voice,
        threads=args.threads,
        allow_download=args.allow_download,
        **{name: getattr(args, name) for name in remote if getattr(args, name) is not None},
    )


def call_settings_from_args(args: argparse.Namespace) -> CallSettings:
    """The per-call settings (turn-taking, reply timeout, noise gate) the options ask for."""
    return CallSettings(
        segmenter=SegmenterSettings(
            min_speech_ms=args.min_speech_ms,
            end_silence_ms=args.end_silence_ms,
            incomplete_silence_ms=args.incomplete_silence_ms,
            pause_ms=args.pause_ms,
            faint_db=args.faint_db or None,
        ),
        reply_timeout=args.reply_timeout,
        noise_gate=not args.no_noise_gate,
        idle_timeout=args.idle_timeout or None,
        max_call_seconds=args.max_call_seconds or None,
    )
