"""CMU pocketsphinx, offline: :class:`PocketSphinxTranscriber`, the light fallback transcriber
(``Engines.light()``, transcription model ``"pocketsphinx"``).

One decoder per process, loaded on first use; pocketsphinx is imported only then. Import the
class from :mod:`realtime_nb.server.engines.asr`.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

from realtime_nb.audio import Audio

from .asr_types import (
    ASR_SAMPLE_RATE,
    EngineUnavailable,
    Segment,
    TokenLogprob,
    Transcript,
    _check_language,
)

__all__ = ["PocketSphinxTranscriber"]

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
