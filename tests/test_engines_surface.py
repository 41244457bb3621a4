"""realtime_nb.server.engines' public surface: the names ``engines``, ``engines.asr`` and
``engines.responder`` export, that each is the same object from every path, and how the main
ones are called.

Pinned so that moving code between the engines' modules (``asr.py`` was split into
``asr_types``, ``asr_whisper``, ``asr_sphinx`` and ``asr_models``; ``responder.py`` into
``responder_types``, ``responder_arguments`` and ``responder_echo``) cannot change what a caller
imports or how it calls it.
"""

from __future__ import annotations

import dataclasses
import inspect

import realtime_nb.server.engines as engines
from realtime_nb.server.engines import asr, responder

ENGINES_NAMES = [
    "OPENAI_TRANSCRIPTION_MODELS", "OUTPUT_SAMPLE_RATE", "REALTIME_VOICES", "CallableResponder",
    "EchoResponder", "EngineUnavailable", "Engines", "EspeakSynthesizer", "EspeakVoice",
    "FasterWhisperTranscriber", "FunctionCall", "InputImage", "LanguageUnsupported", "McpCall",
    "PiperSynthesizer", "PocketSphinxTranscriber", "Reply", "Responder", "ResponseRequest",
    "Segment", "Synthesizer", "TokenLogprob", "Transcriber", "Transcript",
    "TranscriptionCancelled", "as_responder", "latest_user_images", "register_transcriber",
    "split_sentences", "transcribe_turn", "transcriber_for", "transcription_engines",
    "word_error_rate",
]

ASR_NAMES = [
    "OPENAI_TRANSCRIPTION_MODELS", "EngineUnavailable", "FasterWhisperTranscriber",
    "LanguageUnsupported", "PocketSphinxTranscriber", "Segment", "TokenLogprob", "Transcriber",
    "Transcript", "TranscriptionCancelled", "accepts_cancel", "accepts_logprobs",
    "describe_transcriber", "register_transcriber", "split_deltas", "transcribe_turn",
    "transcriber_for", "transcription_engines", "word_error_rate",
]

#: Importable from ``engines.asr`` though not in its ``__all__`` (callers and tests use them).
ASR_ALSO = ["ASR_SAMPLE_RATE", "DEFAULT_MIN_WINDOW_S", "WHISPER_CACHE_SIZE", "window_frames",
            "_WHISPER_CACHE", "_PATH_INSTANCES", "_load_whisper", "_default_whisper_model"]

RESPONDER_NAMES = [
    "CallableResponder", "EchoResponder", "FunctionCall", "InputImage", "McpCall", "Reply",
    "Responder", "ResponseRequest", "approx_tokens", "arguments_for_schema", "as_responder",
    "conversation_images", "latest_user_images", "latest_user_text", "limit_reply",
]

#: Importable from ``engines.responder`` though not in its ``__all__``.
RESPONDER_ALSO = ["NO_SPEECH_REPLY", "ToolChoice"]

SIGNATURES = {
    (asr, "transcribe_turn"): (
        "(transcriber: 'Transcriber', audio: 'Audio', *, has_speech: 'bool | None', "
        "language: 'str | None' = None, prompt: 'str | None' = None, "
        "cancel: 'threading.Event | None' = None, logprobs: 'bool' = False) -> 'Transcript'"),
    (asr, "transcriber_for"): (
        "(model_name: 'str', default: 'Transcriber | None' = None) -> 'Transcriber'"),
    (asr, "transcription_engines"): "(default: 'Transcriber | None' = None) -> 'dict[str, str]'",
    (asr, "register_transcriber"): (
        "(name: 'str', factory: 'Callable[[], Transcriber]') -> 'None'"),
    (asr, "word_error_rate"): "(reference: 'str', hypothesis: 'str') -> 'float'",
    (asr, "FasterWhisperTranscriber"): (
        "(model: 'str | os.PathLike[str] | None' = None, *, compute_type: 'str' = 'int8', "
        "cpu_threads: 'int' = 1, num_workers: 'int' = 1, beam_size: 'int' = 8, "
        "vad_filter: 'bool' = True, no_speech_threshold: 'float' = 0.6, "
        "timestamps: 'bool' = False, min_window_s: 'float | None' = 15.0) -> 'None'"),
    (asr, "PocketSphinxTranscriber"): "(*, silence_peak: 'int' = 64) -> 'None'",
    (responder, "arguments_for_schema"): (
        "(parameters: 'dict[str, Any] | None', utterance: 'str', *, "
        "after_match: 'str' = '') -> 'dict[str, Any]'"),
    (responder, "limit_reply"): (
        "(reply: 'Reply', max_output_tokens: 'int | str | None') -> 'Reply'"),
    (responder, "CallableResponder"): (
        "(fn: 'Callable[..., Any]', *, takes: \"Literal['auto', 'text', 'request']\" = 'auto')"
        " -> 'None'"),
    (responder, "EchoResponder"): "(*, announce_calls: 'bool' = False) -> 'None'",
}

FIELDS = {
    "FunctionCall": ["name", "arguments_json"],
    "McpCall": ["server_label", "name", "arguments_json"],
    "Reply": ["text", "function_calls", "truncated"],
    "ResponseRequest": ["instructions", "conversation", "tools", "tool_choice",
                        "max_output_tokens"],
}


def test_each_module_exports_exactly_its_documented_names() -> None:
    assert sorted(engines.__all__) == sorted(ENGINES_NAMES)
    assert sorted(asr.__all__) == sorted(ASR_NAMES)
    assert sorted(responder.__all__) == sorted(RESPONDER_NAMES)


def test_every_name_is_the_same_object_from_every_public_path() -> None:
    for module, names in ((asr, ASR_NAMES + ASR_ALSO), (responder, RESPONDER_NAMES
                                                         + RESPONDER_ALSO)):
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
            if name in engines.__all__:
                assert getattr(engines, name) is getattr(module, name), name


def test_the_main_callables_keep_their_call_signatures() -> None:
    for (module, name), signature in SIGNATURES.items():
        assert str(inspect.signature(getattr(module, name))) == signature, name


def test_the_reply_types_keep_their_fields_in_order() -> None:
    for name, fields in FIELDS.items():
        cls = getattr(responder, name)
        assert [f.name for f in dataclasses.fields(cls)] == fields, name


def test_a_function_call_and_an_mcp_call_decode_their_arguments_alike() -> None:
    """Both keep the wire's ``arguments`` JSON string and decode it on ``.arguments``."""
    call = responder.FunctionCall("get_weather", '{"city": "Paris"}')
    mcp = responder.McpCall("docs", "search", '{"q": "realtime"}')
    assert call.arguments == {"city": "Paris"}
    assert mcp.arguments == {"q": "realtime"}
    assert responder.FunctionCall("ping").arguments == {}
    assert responder.McpCall("docs", "list").arguments == {}


def test_the_transcriber_mapping_shares_the_state_the_asr_module_exposes() -> None:
    """The caches read through ``engines.asr`` are the very objects the engines use."""
    from realtime_nb.server.engines import asr_models, asr_whisper

    assert asr._PATH_INSTANCES is asr_models._PATH_INSTANCES
    assert asr._WHISPER_CACHE is asr_whisper._WHISPER_CACHE
    assert asr.WHISPER_CACHE_SIZE == asr_whisper.WHISPER_CACHE_SIZE
