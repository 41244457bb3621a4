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
"""

from realtime_nb.vad.energy import EnergyStream, EnergyVAD
from realtime_nb.vad.segmenter import (
    HYSTERESIS,
    Segment,
    Segmenter,
    SemanticVadSettings,
    ServerVadSettings,
    SpeechStarted,
    SpeechStopped,
    TurnDetectionSettings,
    VadEvent,
    neg_threshold,
    segment,
    segment_stepwise,
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

__all__ = [
    "HYSTERESIS",
    "MODEL_SHA256",
    "EnergyStream",
    "EnergyVAD",
    "Segment",
    "Segmenter",
    "SemanticVadSettings",
    "ServerVadSettings",
    "SileroStream",
    "SileroUnavailable",
    "SileroVAD",
    "SpeechModel",
    "SpeechStarted",
    "SpeechStopped",
    "SpeechStream",
    "TurnDetectionSettings",
    "VadEvent",
    "default_speech_model",
    "find_model_file",
    "neg_threshold",
    "segment",
    "segment_stepwise",
    "settings_from_wire",
    "silero_available",
    "speech_probabilities",
]
