"""realtime_nb.vad: speech probability (Silero) and turn segmentation, shared by the local server
(live, chunk by chunk) and the VAD lab (offline sweeps) so that both decide exactly alike.

Live::

    model = SileroVAD()                      # shared onnxruntime session, 1 thread
    stream = model.new_stream(24_000)        # one per session
    seg = Segmenter(ServerVadSettings(), stream.frame_ms)
    for prob in stream.process(chunk_int16):
        for event in seg.push(prob):         # SpeechStarted / SpeechStopped
            ...

Offline::

    probs = speech_probabilities(audio)      # once per recording
    for settings in grid:
        turns = segment(probs, 32.0, settings)   # microseconds per setting

semantic_vad with the end-of-turn model (Smart Turn v3.2, the ``smartturn`` extra)::

    turn = SmartTurn()
    seg = Segmenter(SemanticVadSettings("auto"), 32.0, decisions=True)
    for event in seg.push(prob):             # also TurnCheck(audio_start_ms, audio_end_ms, ...)
        if isinstance(event, TurnCheck):     # judge that span of the 24 kHz VAD input
            seg.decide(event, turn.predict(samples[event.audio_start_ms * 24:
                                                   event.audio_end_ms * 24]))
    segment(probs, 32.0, SemanticVadSettings("high"), decide=TurnDecisions(turn, samples))
"""

from realtime_nb.vad.energy import EnergyStream, EnergyVAD
from realtime_nb.vad.segmenter import (
    ASK_MS,
    HYSTERESIS,
    TURN_AUDIO_MS,
    Segment,
    Segmenter,
    SpeechStarted,
    SpeechStopped,
    TurnCheck,
    VadEvent,
    make_segmenter,
    neg_threshold,
    segment,
    segment_stepwise,
)
from realtime_nb.vad.settings import (
    SemanticVadSettings,
    ServerVadSettings,
    TurnDetectionSettings,
    settings_from_wire,
)
from realtime_nb.vad.silero import (
    MODEL_SHA256,
    SileroStream,
    SileroUnavailable,
    SileroVAD,
    default_speech_model,
    find_model_file,
    silero_available,
)
from realtime_nb.vad.speech import SpeechModel, SpeechStream, speech_probabilities
from realtime_nb.vad.turn import (
    SmartTurn,
    TurnDecisions,
    TurnModelUnavailable,
    default_turn_model,
    turn_model_available,
    turn_model_status,
)

__all__ = [
    "ASK_MS",
    "HYSTERESIS",
    "MODEL_SHA256",
    "TURN_AUDIO_MS",
    "EnergyStream",
    "EnergyVAD",
    "Segment",
    "Segmenter",
    "SemanticVadSettings",
    "ServerVadSettings",
    "SileroStream",
    "SileroUnavailable",
    "SileroVAD",
    "SmartTurn",
    "SpeechModel",
    "SpeechStarted",
    "SpeechStopped",
    "SpeechStream",
    "TurnCheck",
    "TurnDecisions",
    "TurnDetectionSettings",
    "TurnModelUnavailable",
    "VadEvent",
    "default_speech_model",
    "default_turn_model",
    "find_model_file",
    "make_segmenter",
    "neg_threshold",
    "segment",
    "segment_stepwise",
    "settings_from_wire",
    "silero_available",
    "speech_probabilities",
    "turn_model_available",
    "turn_model_status",
]
