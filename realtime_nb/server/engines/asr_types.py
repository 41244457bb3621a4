"""The transcriber contract: the :class:`Transcriber` protocol, what it returns
(:class:`Transcript`, :class:`Segment`, :class:`TokenLogprob`), the errors it may raise, and
:func:`transcribe_turn`, the one way the server calls any transcriber (VAD gate, optional
``cancel`` / ``logprobs`` keywords passed only to engines that take them).

Import these names from :mod:`realtime_nb.server.engines.asr` (or
:mod:`realtime_nb.server.engines`); this module is where they live, so that the engines
(:mod:`.asr_whisper`, :mod:`.asr_sphinx`) and the model-name table (:mod:`.asr_models`) share
them without importing each other. It loads no model and imports no engine package.
"""

from __future__ import annotations

import inspect
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from realtime_nb.audio import Audio

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ASR_SAMPLE_RATE",
    "EngineUnavailable",
    "LanguageUnsupported",
    "Segment",
    "TokenLogprob",
    "Transcriber",
    "Transcript",
    "TranscriptionCancelled",
    "accepts_cancel",
    "accepts_logprobs",
    "split_deltas",
    "transcribe_turn",
]

#: Whisper and pocketsphinx both want 16 kHz mono.
ASR_SAMPLE_RATE = 16_000


class EngineUnavailable(RuntimeError):
    """An engine's package or model is not installed; the message names what to install."""


class LanguageUnsupported(ValueError):
    """The session asked for a language the engine's model cannot transcribe (e.g. ``"fr"`` with
    the English-only Whisper tiny.en). The message says what to configure instead; the local
    server reports it in ``conversation.item.input_audio_transcription.failed``."""


class TranscriptionCancelled(Exception):
    """Raised by a transcriber that accepts ``cancel`` when that event was set mid-way (the
    caller no longer wants the text, e.g. a speculative transcription whose pause turned out not
    to end the turn)."""


@dataclass(frozen=True)
class Segment:
    """A stretch of recognised text with its position in the audio, in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class TokenLogprob:
    """One decoded token with the model's log-probability for it (the wire's ``LogProbProperties``:
    ``{token, logprob, bytes}``).

    ``token`` is the token's text as the model spells it (Whisper's tokens carry their leading
    space: ``" Paris"``); ``bytes`` are its UTF-8 bytes (a token may hold part of a multi-byte
    character: then ``token`` shows U+FFFD and only ``bytes`` are exact); ``logprob`` ≤ 0.
    """

    token: str
    logprob: float
    bytes: tuple[int, ...]

    def to_wire(self) -> dict[str, Any]:
        """The ``LogProbProperties`` object of the transcription events."""
        return {"token": self.token, "logprob": self.logprob, "bytes": list(self.bytes)}


@dataclass(frozen=True)
class Transcript:
    """What a transcriber heard.

    ``text`` is the whole transcript (``""`` when nothing was said). ``deltas`` are the pieces the
    server streams as ``conversation.item.input_audio_transcription.delta`` events, in order;
    ``"".join(deltas) == text`` always holds. ``segments`` carry timings when the engine has them.
    ``language`` is the ISO-639-1 code the engine used or detected, if known.

    ``logprobs`` (only when asked for with ``logprobs=True`` and the engine computes them, else
    ``None``): every decoded token of ``text`` in order, and ``delta_logprobs`` the same tokens
    grouped by delta (``len(delta_logprobs) == len(deltas)``). The tokens' text joins to ``text``
    up to surrounding whitespace (``"".join(t.token for t in logprobs).strip() == text``).
    """

    text: str
    segments: tuple[Segment, ...] = ()
    deltas: tuple[str, ...] = ()
    language: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    delta_logprobs: tuple[tuple[TokenLogprob, ...], ...] | None = None

    def __post_init__(self) -> None:
        if "".join(self.deltas) != self.text:
            raise ValueError("Transcript.deltas must join to Transcript.text exactly.")
        if self.delta_logprobs is not None and len(self.delta_logprobs) != len(self.deltas):
            raise ValueError("Transcript.delta_logprobs must have one entry per delta.")

    @classmethod
    def from_tokens(
        cls, tokens: tuple[TokenLogprob, ...], *, segments: tuple[Segment, ...] = (),
        language: str | None = None,
    ) -> Transcript:
        """A transcript made of decoded tokens with their log-probabilities: the text is the
        tokens joined (whitespace stripped at both ends) and each delta is one word, i.e. the
        tokens from one that starts with a space up to the next (so each delta carries exactly
        the log-probabilities of its own tokens)."""
        groups: list[list[TokenLogprob]] = []
        for tok in tokens:
            if not groups or tok.token[:1].isspace():
                groups.append([tok])
            else:
                groups[-1].append(tok)
        raw = ["".join(t.token for t in g) for g in groups]
        text = "".join(raw)
        lead = len(text) - len(text.lstrip())
        stripped = text.strip()
        deltas: list[str] = []
        pos = 0
        for piece in raw:
            lo, hi = max(pos, lead), min(pos + len(piece), lead + len(stripped))
            deltas.append(text[lo:hi] if hi > lo else "")
            pos += len(piece)
        keep = [i for i, d in enumerate(deltas) if d]
        return cls(stripped, segments=segments, deltas=tuple(deltas[i] for i in keep),
                   language=language, logprobs=tuple(tokens),
                   delta_logprobs=tuple(tuple(groups[i]) for i in keep))

    @classmethod
    def from_text(
        cls, text: str, *, segments: tuple[Segment, ...] = (), language: str | None = None
    ) -> Transcript:
        """A transcript whose deltas are ``text`` split word by word (see :func:`split_deltas`)."""
        text = text.strip()
        return cls(text, segments=segments, deltas=split_deltas(text), language=language)

    @classmethod
    def empty(cls, language: str | None = None) -> Transcript:
        """The transcript of a turn in which no speech was heard."""
        return cls("", language=language)


def split_deltas(text: str) -> tuple[str, ...]:
    """Split ``text`` into word pieces that keep their leading whitespace (they join back to it)."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return (text,) if text else ()
    tail = text[sum(map(len, pieces)) :]  # trailing whitespace, if any, rides on the last word
    pieces[-1] += tail
    return tuple(pieces)


@runtime_checkable
class Transcriber(Protocol):
    """Turns one committed user turn into text.

    Implementations may also offer ``warm_up() -> None`` (load the model now rather than on the
    first turn); :class:`realtime_nb.server.engines.Engines` calls it when present. They may also
    accept a keyword ``cancel: threading.Event | None``: when the caller sets it, the engine may
    stop early by raising :class:`TranscriptionCancelled` (the server uses it to drop speculative
    transcriptions the turn no longer needs).
    They may also accept ``logprobs: bool`` (the session's ``include`` asks for
    ``item.input_audio_transcription.logprobs``): then they fill :attr:`Transcript.logprobs` with
    the model's own numbers, or leave it ``None`` when the model has none (never invented).
    ``audio`` may have any sample rate; resample with :meth:`Audio.resample` if the engine needs a
    particular one. ``language`` is an ISO-639-1 hint and ``prompt`` a text hint (both from the
    session's ``audio.input.transcription``); an engine that cannot honour a ``language`` raises
    :class:`LanguageUnsupported` rather than transcribing as another language.
    """

    def transcribe(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript: ...


def _accepts(transcriber: Transcriber, keyword: str) -> bool:
    key = (type(transcriber), keyword)
    found = _ACCEPTS.get(key)
    if found is None:
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(transcriber.transcribe).parameters
        except (TypeError, ValueError):
            params = {}
        found = keyword in params
        _ACCEPTS[key] = found
    return found


def accepts_cancel(transcriber: Transcriber) -> bool:
    """Whether ``transcriber.transcribe`` takes the optional ``cancel`` keyword."""
    return _accepts(transcriber, "cancel")


def accepts_logprobs(transcriber: Transcriber) -> bool:
    """Whether ``transcriber.transcribe`` takes the optional ``logprobs`` keyword."""
    return _accepts(transcriber, "logprobs")


_ACCEPTS: dict[tuple[type, str], bool] = {}


def transcribe_turn(
    transcriber: Transcriber,
    audio: Audio,
    *,
    has_speech: bool | None,
    language: str | None = None,
    prompt: str | None = None,
    cancel: threading.Event | None = None,
    logprobs: bool = False,
) -> Transcript:
    """Transcribe a user turn, gated by the caller's VAD verdict.

    ``has_speech=False`` (the VAD heard no speech in this audio) returns an empty transcript
    without running the model: Whisper would otherwise invent text for silence or noise.
    ``has_speech=None`` (unknown, e.g. manual commits with VAD off) and ``True`` run the model.
    Works for any :class:`Transcriber`, including user-supplied ones. ``cancel`` is passed on to
    transcribers that accept it (see :class:`Transcriber`); setting it may make this raise
    :class:`TranscriptionCancelled`. ``logprobs=True`` is passed on to transcribers that accept it
    (others give ``Transcript.logprobs = None``); an empty transcript has ``logprobs == ()``.
    """
    if has_speech is False or len(audio.samples) == 0:
        empty = Transcript.empty(language)
        return Transcript("", language=language, logprobs=(), delta_logprobs=()) if (
            logprobs) else empty
    extra: dict[str, Any] = {}
    if cancel is not None and accepts_cancel(transcriber):
        extra["cancel"] = cancel
    if logprobs and accepts_logprobs(transcriber):
        extra["logprobs"] = True
    return transcriber.transcribe(audio, language=language, prompt=prompt, **extra)


def _check_language(language: str | None, multilingual: bool, model: str) -> str | None:
    """The ISO-639-1 code to give Whisper (``None``: detect), or :class:`LanguageUnsupported`.
    Shared by both shipped engines (pocketsphinx passes ``multilingual=False``)."""
    if not language:
        return None
    code = language.split("-")[0].split("_")[0].strip().lower()
    if not multilingual and code != "en":
        raise LanguageUnsupported(
            f"The local transcriber's Whisper model is English-only ({model}) and "
            f"cannot transcribe language {language!r}. Use language 'en' (or none), or give the "
            "local server a multilingual faster-whisper model "
            "(transcription model 'faster-whisper:<folder>', or Engines(transcriber="
            "FasterWhisperTranscriber('<folder>'))).")
    return code
