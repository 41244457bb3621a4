"""Input noise reduction for the local server (``session.audio.input.noise_reduction``).

The service "applies noise reduction to appended audio before VAD and the model", and
``conversation.item.retrieve`` returns the audio after it. The local server does the same with
the Speex preprocessor's noise suppressor (``pyspeex-noise``, the ``noise`` extra: a 0.4 MB
compiled wheel, no dependencies, MIT), chosen by measurement on this kind of machine (numbers in
the README, "Noise reduction"):

* it is the only candidate tried that lowered Whisper's word error on noisy speech (white and pink
  noise, 0-10 dB SNR); RNNoise (``pyrnnoise``) raised the SNR more but the word error too, and
  cost ~55 ms of CPU per second of audio; ``noisereduce`` (spectral gating) is not streaming;
* it costs ~2.4 ms of CPU per second of audio (less than Silero VAD's own cost), so it runs
  inline as audio is appended.

What the settings mean here:

* ``strength`` (0-1, default 1) scales the suppression depth: the Speex suppressor may lower noise
  by up to ``strength × 30 dB`` (Speex's own default depth is 30 dB). ``strength = 0`` leaves the
  audio untouched (nothing is run).
* ``type``: ``near_field`` and ``far_field`` run the **same** filter. Speex's other far-field
  tools (automatic gain, dereverberation) are not used: its gain control made every turn
  unrecognisable in the measurements (word error 100 %), and dereverberation is not exposed by
  the package.

The filter is streaming and stateful (one per session; chunks of any size, even odd byte
counts), resamples only through :class:`realtime_nb.audio.StreamResampler` (input rate → 16 kHz →
input rate, so filtered audio holds nothing above 8 kHz), and returns exactly as many bytes as it
is given: the output is the filtered stream delayed by :attr:`InputNoiseFilter.latency_ms`, a
constant (as silence at the start) of 69 ms for PCM at 24 kHz (the two soxr resamplers hold ~35
ms each) and 222 ms for G.711 at 8 kHz (soxr buffers more at the lower rate). The last
``latency_ms`` of appended audio stay inside the filter until more audio arrives, so VAD events
come that much later and a manual commit right after the last word leaves that much behind (it
starts the next turn).

What the service's filter is, and whether its two types differ, is not published (UNCONFIRMED);
only where it acts (appended audio, before VAD and the model; retrieved items hold its output) is.

Without ``pyspeex-noise`` nothing is filtered: :func:`noise_filter_status` says so, the server logs
a warning when a session asks for noise reduction, and the setting is still accepted (as the
service accepts it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from realtime_nb.audio import StreamResampler, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "MAX_SUPPRESSION_DB",
    "InputNoiseFilter",
    "SpeexDenoiser",
    "default_noise_filter",
    "noise_filter_status",
    "speex_available",
    "warm_up",
]

logger = logging.getLogger(__name__)

#: Suppression depth at ``strength = 1`` (Speex's default).
MAX_SUPPRESSION_DB = 30.0

_SPEEX_RATE = 16_000
_SPEEX_FRAME = 160  # 10 ms at 16 kHz: the size pyspeex-noise processes


def speex_available() -> bool:
    """Whether ``pyspeex-noise`` can be imported (``pip install 'realtime_nb[noise]'``)."""
    try:
        import pyspeex_noise  # noqa: F401
    except ImportError:
        return False
    return True


def noise_filter_status() -> str:
    """What the local server does with ``noise_reduction``: ``"speex"`` (applied) or a sentence
    starting ``"not applied"`` naming what to install."""
    if speex_available():
        return "speex"
    return ("not applied: pyspeex-noise is not installed (pip install 'realtime_nb[noise]'); "
            "noise_reduction is accepted and echoed but the audio is not filtered")


class SpeexDenoiser:
    """The Speex noise suppressor on a stream of int16 samples at ``sample_rate``.

    ``process(samples) -> samples`` returns what is ready (float-free int16; the total output
    trails the input by the resamplers' delay and up to one 10 ms frame). ``suppression_db`` is
    the largest attenuation applied to noise (positive dB). One instance per stream; not
    thread-safe.
    """

    def __init__(self, sample_rate: int, *, suppression_db: float = MAX_SUPPRESSION_DB) -> None:
        try:
            from pyspeex_noise import AudioProcessor
        except ImportError as exc:
            from .asr_types import EngineUnavailable

            raise EngineUnavailable(
                "Noise reduction needs pyspeex-noise: pip install 'realtime_nb[noise]'") from exc
        if not 0 <= suppression_db <= 100:
            raise ValueError(f"suppression_db must be within 0-100 dB, got {suppression_db!r}")
        self.sample_rate = sample_rate
        self.suppression_db = float(suppression_db)
        # auto_gain 0: no automatic gain control (see the module docstring)
        self._proc = AudioProcessor(0, -round(self.suppression_db))
        self._down = StreamResampler(sample_rate, _SPEEX_RATE)
        self._up = StreamResampler(_SPEEX_RATE, sample_rate)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Filter the next chunk (int16 at ``sample_rate``); returns the int16 output ready."""
        x = self._down.process(np.asarray(samples, dtype=np.int16))
        if len(self._pending):
            x = np.concatenate([self._pending, x])
        whole = len(x) // _SPEEX_FRAME * _SPEEX_FRAME
        self._pending = x[whole:]
        if not whole:
            return np.zeros(0, dtype=np.int16)
        frames = np.clip(np.round(x[:whole] * 32768.0), -32768, 32767).astype("<i2")
        raw = frames.tobytes()
        step = _SPEEX_FRAME * 2
        cleaned = b"".join(self._proc.process_10ms(raw[i:i + step])
                           for i in range(0, len(raw), step))
        y = np.frombuffer(cleaned, dtype="<i2")
        out = self._up.process(y)
        return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def _latency_samples(sample_rate: int) -> int:
    """Samples of delay that keep :class:`InputNoiseFilter`'s output FIFO from ever running dry
    (measured once per rate, ~50 ms of CPU: the largest shortfall of a denoiser's output behind
    its input over chunk sizes from 7 samples to 1 s, plus a 2 ms margin and 8 samples for
    smaller chunks; measured with 1-sample chunks it is at most 2 samples more than with 7)."""
    found = _LATENCY.get(sample_rate)
    if found is None:
        worst = 0
        rng = np.random.default_rng(0)
        for size in (7, 80, 160, 441, 480, 2400, sample_rate):
            den = SpeexDenoiser(sample_rate)
            given = made = 0
            for _ in range(max(4, (sample_rate // 2) // size)):
                chunk = rng.integers(-3000, 3000, size, dtype=np.int16)
                given += size
                made += len(den.process(chunk))
                worst = max(worst, given - made)
        found = _LATENCY[sample_rate] = worst + sample_rate // 500 + 8
    return found


_LATENCY: dict[int, int] = {}


def warm_up() -> None:
    """Measure the filter's latency for the input rates (24 and 8 kHz) now, off the event loop,
    so the first session that turns noise reduction on does not pay for it (nothing happens
    without pyspeex-noise). The local server calls this in its warm-up."""
    if speex_available():
        for rate in (24_000, 8_000):
            _latency_samples(rate)

_Codec = tuple[int, Callable[[Any], np.ndarray] | None, Callable[[Any], bytes] | None]
_CODECS: dict[str, _Codec] = {
    "audio/pcm": (2, None, None),
    "audio/pcmu": (1, ulaw_decode, ulaw_encode),
    "audio/pcma": (1, alaw_decode, alaw_encode),
}


class InputNoiseFilter:
    """A session's noise filter over raw input-format bytes (what ``input_audio_buffer.append``
    carries): ``process(data) -> bytes`` of exactly ``len(data)``, the filtered stream delayed by
    :attr:`latency_ms`. PCM16 chunks may split a sample (odd byte counts are fine).

    Build it with :func:`default_noise_filter` from the session's ``noise_reduction`` object and
    input ``format``; ``SessionCore`` calls it on every append before VAD and before keeping the
    audio for commits.
    """

    def __init__(self, fmt: dict[str, Any], *, suppression_db: float = MAX_SUPPRESSION_DB) -> None:
        kind = fmt.get("type", "audio/pcm")
        if kind not in _CODECS:
            raise ValueError(f"no noise filter for input format {kind!r}")
        self._width, self._decode, self._encode = _CODECS[kind]
        self.sample_rate = 24_000 if kind == "audio/pcm" else 8_000
        self.suppression_db = suppression_db
        self._denoiser = SpeexDenoiser(self.sample_rate, suppression_db=suppression_db)
        latency = _latency_samples(self.sample_rate)
        #: constant delay of the output behind the input, in milliseconds
        self.latency_ms = latency * 1000 / self.sample_rate
        self._in = bytearray()
        self._out = bytearray(self._encode_samples(np.zeros(latency, dtype=np.int16)))

    def _encode_samples(self, samples: np.ndarray) -> bytes:
        if self._encode is None:
            return samples.astype("<i2").tobytes()
        return self._encode(samples)

    def process(self, data: bytes) -> bytes:
        """Filter one appended chunk; returns the same number of bytes."""
        self._in += data
        whole = len(self._in) // self._width * self._width
        if whole:
            raw = bytes(self._in[:whole])
            del self._in[:whole]
            samples = (np.frombuffer(raw, dtype="<i2") if self._decode is None
                       else self._decode(raw))
            self._out += self._encode_samples(self._denoiser.process(samples))
        if len(self._out) < len(data):  # pragma: no cover - the latency is sized to prevent it
            logger.warning("noise filter ran dry: padding %d bytes", len(data) - len(self._out))
            self._out += bytes(len(data) - len(self._out))
        out = bytes(self._out[:len(data)])
        del self._out[:len(data)]
        return out


def default_noise_filter(noise_reduction: dict[str, Any] | None,
                         fmt: dict[str, Any]) -> InputNoiseFilter | None:
    """The filter for a session's ``noise_reduction`` object and input ``format``, or ``None``
    (no filtering) when it is ``null``, its ``strength`` is 0, or pyspeex-noise is missing (then
    a warning is logged: the setting is accepted but not applied)."""
    if not noise_reduction:
        return None
    strength = float(noise_reduction.get("strength", 1.0))
    if strength <= 0:
        return None
    if not speex_available():
        logger.warning("noise_reduction requested but %s", noise_filter_status())
        return None
    return InputNoiseFilter(fmt, suppression_db=strength * MAX_SUPPRESSION_DB)
