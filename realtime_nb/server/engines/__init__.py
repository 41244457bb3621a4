"""The local server's offline engines: speech recognition, speech synthesis, the responder.

The server takes one :class:`Engines` bundle. Plug your own engine by passing any object that
follows the matching protocol (or, for the responder, a plain function)::

    from realtime_nb.server.engines import Engines

    engines = Engines(responder=lambda text: f"I heard {len(text.split())} words.")
    engines = Engines.light()                      # pocketsphinx instead of Whisper
    engines = Engines(transcriber=MyAsr(), synthesizer=MyTts())

* ``transcriber`` — :class:`Transcriber`: ``transcribe(audio, *, language, prompt) -> Transcript``
* ``synthesizer`` — :class:`Synthesizer`: ``synthesize(text, *, voice, speed) -> Iterator[Audio]``
  (24 kHz chunks, sentence by sentence)
* ``responder`` — :class:`Responder`: ``respond(ResponseRequest) -> Reply``, or a function
  ``text -> str`` (see :func:`as_responder`)
* ``vad`` — the server's voice-activity slot (a speech model or factory, whatever
  :mod:`realtime_nb.server` documents); ``None`` means "the server's default" (Silero).
* ``noise`` — the input noise filter factory for ``audio.input.noise_reduction``
  (``(noise_reduction, input_format) -> filter or None``, see
  :mod:`realtime_nb.server.engines.denoise`); ``None`` means the default (the Speex suppressor
  when ``pyspeex-noise`` is installed, else accepted and not applied), ``False`` means never
  filter.
* ``turn`` — the end-of-turn model of semantic_vad (``predict(int16 24 kHz samples) ->
  probability the turn is complete`` and ``predict_many``); ``None`` means the default (Smart Turn
  v3.2 when ``pipecat-ai`` is installed, else the length-rule fallback), ``False`` means none.

Models load lazily, once per process; :meth:`Engines.warm_up` loads them all up front. The server
calls engines from worker threads, never from its event loop; the shipped engines are all
thread-safe (see each class).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.audio import Audio

from .asr import (
    OPENAI_TRANSCRIPTION_MODELS,
    EngineUnavailable,
    FasterWhisperTranscriber,
    LanguageUnsupported,
    PocketSphinxTranscriber,
    Segment,
    TokenLogprob,
    Transcriber,
    Transcript,
    TranscriptionCancelled,
    register_transcriber,
    transcribe_turn,
    transcriber_for,
    transcription_engines,
    word_error_rate,
)
from .responder import (
    CallableResponder,
    EchoResponder,
    FunctionCall,
    InputImage,
    McpCall,
    Reply,
    Responder,
    ResponseRequest,
    as_responder,
    latest_user_images,
)
from .tts import (
    OUTPUT_SAMPLE_RATE,
    REALTIME_VOICES,
    EspeakSynthesizer,
    EspeakVoice,
    PiperSynthesizer,
    Synthesizer,
    split_sentences,
)

__all__ = [
    "OPENAI_TRANSCRIPTION_MODELS",
    "OUTPUT_SAMPLE_RATE",
    "REALTIME_VOICES",
    "CallableResponder",
    "EchoResponder",
    "EngineUnavailable",
    "Engines",
    "EspeakSynthesizer",
    "EspeakVoice",
    "FasterWhisperTranscriber",
    "FunctionCall",
    "InputImage",
    "LanguageUnsupported",
    "McpCall",
    "PiperSynthesizer",
    "PocketSphinxTranscriber",
    "Reply",
    "Responder",
    "ResponseRequest",
    "Segment",
    "Synthesizer",
    "TokenLogprob",
    "Transcriber",
    "Transcript",
    "TranscriptionCancelled",
    "as_responder",
    "latest_user_images",
    "register_transcriber",
    "split_sentences",
    "transcribe_turn",
    "transcriber_for",
    "transcription_engines",
    "word_error_rate",
]


@dataclass
class Engines:
    """The engines one local server uses. Every field has a working offline default.

    Construction is cheap (models load on first use or on :meth:`warm_up`). A plain function
    given as ``responder`` is accepted and wrapped with :func:`as_responder` (so the attribute is
    always a :class:`Responder`). ``vad`` is typed loosely on purpose: it is the server's slot.
    """

    transcriber: Transcriber = field(default_factory=FasterWhisperTranscriber)
    synthesizer: Synthesizer = field(default_factory=EspeakSynthesizer)
    responder: Responder = field(default_factory=EchoResponder)
    vad: Any = None
    turn: Any = None
    noise: Any = None

    def __post_init__(self) -> None:
        self.responder = as_responder(self.responder)
        for name, protocol in (("transcriber", Transcriber), ("synthesizer", Synthesizer)):
            if not isinstance(getattr(self, name), protocol):
                method = "transcribe" if name == "transcriber" else "synthesize"
                raise TypeError(f"Engines.{name} must have a {method}() method.")

    @classmethod
    def default(cls) -> Engines:
        """Whisper tiny.en (faster-whisper), espeak-ng, the echo responder."""
        return cls(FasterWhisperTranscriber(), EspeakSynthesizer(), EchoResponder())

    @classmethod
    def light(cls) -> Engines:
        """pocketsphinx, espeak-ng, the echo responder: quickest to load, least accurate ASR."""
        return cls(PocketSphinxTranscriber(), EspeakSynthesizer(), EchoResponder())

    def warm_up(self) -> None:
        """Load every engine's model now (engines without ``warm_up`` are skipped)."""
        for engine in (self.transcriber, self.synthesizer, self.responder):
            warm = getattr(engine, "warm_up", None)
            if callable(warm):
                warm()

    def transcriber_for(self, model_name: str) -> Transcriber:
        """The transcriber for a session's transcription model name: this bundle's
        ``transcriber`` for every OpenAI model name, a local engine for local names (see
        :func:`realtime_nb.server.engines.asr.transcriber_for`)."""
        return transcriber_for(model_name, default=self.transcriber)

    def transcribe(
        self,
        audio: Audio,
        *,
        has_speech: bool | None,
        model_name: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
        cancel: threading.Event | None = None,
        logprobs: bool = False,
    ) -> Transcript:
        """Transcribe one user turn, returning ``""`` without running ASR when the VAD heard no
        speech (``has_speech=False``). ``model_name`` picks the engine as
        :meth:`transcriber_for` does (``None``: this bundle's transcriber). ``cancel`` and
        ``logprobs``: see :func:`~realtime_nb.server.engines.asr.transcribe_turn` (``cancel`` may
        raise :class:`TranscriptionCancelled` once set; an engine that cannot honour
        ``language`` raises :class:`LanguageUnsupported`)."""
        engine = self.transcriber if model_name is None else self.transcriber_for(model_name)
        return transcribe_turn(engine, audio, has_speech=has_speech, language=language,
                               prompt=prompt, cancel=cancel, logprobs=logprobs)

    def noise_filter_factory(self) -> Any:
        """The noise filter factory sessions use (``None``: no filtering at all)."""
        if self.noise is False:
            return None
        if self.noise is None:
            from .denoise import default_noise_filter

            return default_noise_filter
        return self.noise

    def transcription_engines(self) -> dict[str, str]:
        """Which engine each transcription model name runs on with this bundle (see
        :func:`~realtime_nb.server.engines.asr.transcription_engines`)."""
        return transcription_engines(self.transcriber)
