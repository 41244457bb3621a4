"""Offline engines of the local server: ASR speed and accuracy, TTS speed and intelligibility.

Speech material is the ten test sentences of tests/engine_fixtures.py spoken by the Debian
espeak-ng command (so ASR is measured on audio the TTS under test did not make). Every figure is a
ratio against a reference measured in the same run:

* ASR real-time factor = processing time / audio duration; word error = edits / reference words.
* TTS real-time factor = synthesis time / duration of the speech produced; first-sentence share =
  time to the first chunk / time for the whole reply; round-trip word error = TTS → Whisper.

Run: ``.venv/bin/python benchmarks/bench_engines.py``
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from engine_fixtures import FIVE_SECOND_REPLY, SENTENCES, espeak_speech

from realtime_nb.audio import Audio
from realtime_nb.server.engines.asr import (
    EngineUnavailable,
    FasterWhisperTranscriber,
    PocketSphinxTranscriber,
    Transcriber,
    word_error_rate,
)
from realtime_nb.server.engines.tts import (
    REALTIME_VOICES,
    EspeakSynthesizer,
    PiperSynthesizer,
    Synthesizer,
)


def _row(name: str, value: float, unit: str, reference: float, goal: str, met: bool,
         detail: str) -> dict[str, Any]:
    return {"name": name, "value": round(value, 4), "unit": unit, "reference": round(reference, 4),
            "goal": goal, "met": bool(met), "detail": detail}


def _asr_rows(label: str, engine: Transcriber, speech: list[tuple[str, Audio]],
              rtf_goal: float, wer_goal: float) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    warm = getattr(engine, "warm_up", None)
    if callable(warm):
        warm()
    load_s = time.perf_counter() - t0
    busy = 0.0
    errors = 0.0
    words = 0
    worst = ("", 0.0)
    for text, audio in speech:
        start = time.perf_counter()
        heard = engine.transcribe(audio).text
        busy += time.perf_counter() - start
        wer = word_error_rate(text, heard)
        n = len(text.split())
        errors += wer * n
        words += n
        if wer > worst[1]:
            worst = (f"{text!r} → {heard!r}", wer)
    audio_s = sum(a.duration_ms for _, a in speech) / 1000
    rtf = busy / audio_s
    wer = errors / words
    return [
        _row(f"asr_{label}_rtf", rtf, "× real time", audio_s, f"<= {rtf_goal}", rtf <= rtf_goal,
             f"{busy:.2f} s to transcribe {audio_s:.1f} s of speech in {len(speech)} utterances "
             f"({busy / len(speech) * 1000:.0f} ms each); load + warm-up {load_s:.2f} s"),
        _row(f"asr_{label}_wer_espeak", wer, "word error", words, f"<= {wer_goal}",
             wer <= wer_goal, f"{errors:.0f} errors in {words} words; worst {worst[0]}"),
    ]


def _timed_reply(engine: Synthesizer, text: str, **kwargs: Any) -> tuple[float, float, float]:
    """(seconds to first chunk, seconds for all, seconds of speech produced)."""
    start = time.perf_counter()
    first = None
    speech_ms = 0.0
    chunks: Iterator[Audio] = engine.synthesize(text, **kwargs)
    for chunk in chunks:
        if first is None:
            first = time.perf_counter() - start
        speech_ms += chunk.duration_ms
    total = time.perf_counter() - start
    return (first or total), total, speech_ms / 1000


def _tts_rows(label: str, engine: Synthesizer, whisper: Transcriber,
              voices: tuple[str, ...]) -> list[dict[str, Any]]:
    warm = getattr(engine, "warm_up", None)
    if callable(warm):
        warm()
    runs = [_timed_reply(engine, FIVE_SECOND_REPLY) for _ in range(7)]
    first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    speech_s = statistics.median(r[2] for r in runs)
    rtf = total / speech_s
    share = first / total
    per_voice: dict[str, float] = {}
    errors = 0.0
    words = 0
    texts = [*SENTENCES, FIVE_SECOND_REPLY]
    for voice in voices:
        voice_errors = 0.0
        voice_words = 0
        for text in texts:
            chunks = engine.synthesize(text, voice=voice)
            heard = " ".join(whisper.transcribe(c).text for c in chunks)
            n = len(text.split())
            voice_errors += word_error_rate(text, heard) * n
            voice_words += n
        per_voice[voice] = voice_errors / voice_words
        errors += voice_errors
        words += voice_words
    wer = errors / words
    return [
        _row(f"tts_{label}_rtf", rtf, "× real time", speech_s, "<= 0.3", rtf <= 0.3,
             f"{total * 1000:.1f} ms for a {speech_s:.1f} s reply (3 sentences, median of 7) = "
             f"{rtf * 5000:.1f} ms per 5 s of speech"),
        _row(f"tts_{label}_first_sentence_share", share, "of whole-reply time", total * 1000,
             "<= 0.6", share <= 0.6,
             f"first sentence ready after {first * 1000:.1f} ms, whole reply after "
             f"{total * 1000:.1f} ms"),
        _row(f"tts_{label}_roundtrip_wer", wer, "word error", words, "<= 0.2", wer <= 0.2,
             f"{len(texts)} texts × {len(voices)} voice(s) → Whisper tiny.en; per voice: "
             + ", ".join(f"{v} {e:.2f}" for v, e in per_voice.items())),
    ]


def run() -> list[dict[str, Any]]:
    """Measure every available engine; see the module docstring for the figures."""
    speech = [(text, espeak_speech(text).resample(24_000)) for text in SENTENCES]
    whisper = FasterWhisperTranscriber()
    rows = _asr_rows("whisper_tiny_en", whisper, speech, rtf_goal=0.5, wer_goal=0.2)
    rows += _asr_rows("pocketsphinx", PocketSphinxTranscriber(), speech, rtf_goal=1.0,
                      wer_goal=0.9)
    rows += _tts_rows("espeak", EspeakSynthesizer(), whisper, REALTIME_VOICES)
    make_piper: Callable[[], Synthesizer] = PiperSynthesizer
    try:
        rows += _tts_rows("piper_joe", make_piper(), whisper, ("alloy",))
    except EngineUnavailable as exc:
        rows.append(_row("tts_piper_joe_rtf", float("nan"), "× real time", 0.0, "<= 0.3", False,
                         f"not measured: {exc}"))
    return rows


if __name__ == "__main__":
    for row in run():
        mark = "ok " if row["met"] else "MISS"
        print(f"{mark} {row['name']:<40} {row['value']:>9} {row['unit']:<22} "
              f"(goal {row['goal']}; ref {row['reference']}) {row['detail']}")
