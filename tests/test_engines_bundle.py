"""The Engines bundle (realtime_nb.server.engines.Engines): defaults, presets, plugging in."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from realtime_nb.audio import Audio
from realtime_nb.server.engines import (
    CallableResponder,
    EchoResponder,
    Engines,
    EspeakSynthesizer,
    FasterWhisperTranscriber,
    PocketSphinxTranscriber,
    Reply,
    ResponseRequest,
    Transcript,
)


def test_default_engines_are_whisper_espeak_and_echo() -> None:
    for engines in (Engines(), Engines.default()):
        assert isinstance(engines.transcriber, FasterWhisperTranscriber)
        assert isinstance(engines.synthesizer, EspeakSynthesizer)
        assert isinstance(engines.responder, EchoResponder)
        assert engines.vad is None


def test_light_engines_use_pocketsphinx() -> None:
    engines = Engines.light()
    assert isinstance(engines.transcriber, PocketSphinxTranscriber)
    assert isinstance(engines.synthesizer, EspeakSynthesizer)


def test_a_plain_function_plugs_in_as_the_responder() -> None:
    engines = Engines(responder=lambda text: f"{len(text.split())} words")  # type: ignore[arg-type]
    assert isinstance(engines.responder, CallableResponder)
    request = ResponseRequest(
        conversation=[{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "one two three"}]}]
    )
    assert engines.responder.respond(request) == Reply(text="3 words")


def test_objects_missing_the_engine_method_are_rejected() -> None:
    with pytest.raises(TypeError, match="transcribe"):
        Engines(transcriber=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="synthesize"):
        Engines(synthesizer=object())  # type: ignore[arg-type]


def test_warm_up_calls_each_engines_warm_up_and_skips_engines_without_one() -> None:
    """A user's own engines need not have warm_up; those that do are warmed once each."""
    calls: list[str] = []

    class MyTranscriber:
        def transcribe(self, audio: Audio, *, language: str | None = None,
                       prompt: str | None = None) -> Transcript:
            return Transcript.from_text("fixed")

        def warm_up(self) -> None:
            calls.append("transcriber")

    class MySynthesizer:  # no warm_up
        def synthesize(self, text: str, *, voice: str = "alloy",
                       speed: float = 1.0) -> Iterator[Audio]:
            return iter(())

    engines = Engines(transcriber=MyTranscriber(), synthesizer=MySynthesizer(),
                      responder=lambda text: text)  # type: ignore[arg-type]
    engines.warm_up()
    assert calls == ["transcriber"]
    tone = Audio(np.ones(2400, np.int16), 24_000)
    assert engines.transcribe(tone, has_speech=True).text == "fixed"
    assert engines.transcribe(tone, has_speech=False).text == ""
