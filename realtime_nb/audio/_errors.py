"""The one exception type of realtime_nb.audio, and the sample-rate check shared by all."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["MAX_RATE", "MIN_RATE", "AudioError", "check_rate"]

#: Lowest sample rate accepted anywhere (Hz). Telephony's 8 kHz is the lowest rate in real use.
MIN_RATE = 1_000
#: Highest sample rate accepted anywhere (Hz).
MAX_RATE = 384_000


class AudioError(ValueError):
    """Raised for anything that is not usable audio; the message says what was wrong and what to do.

    It is a ``ValueError``, so code that already catches ``ValueError`` keeps working.
    """


def check_rate(rate: Any, what: str = "sample_rate") -> int:
    """Return ``rate`` as an ``int`` if it is a plausible sample rate in Hz, else raise AudioError.

    Integral floats (``24000.0``) and numpy integers are accepted; ``None``, booleans, fractions
    and values outside ``MIN_RATE..MAX_RATE`` are not.
    """
    if rate is None:
        raise AudioError(
            f"{what} is missing: raw samples do not carry their rate, so pass it "
            f"(e.g. {what}=24000 for the Realtime API's PCM16, 48000 for browser audio)."
        )
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise AudioError(f"{what} must be a number of Hz, got {type(rate).__name__} {rate!r}.")
    # NaN or fractional. (The two ignores: typeshed's numbers.Real declares no __int__, but the
    # Reals in use, int, float, Fraction and numpy's numbers, all have one.)
    if rate != rate or int(rate) != rate:  # type: ignore[call-overload]
        raise AudioError(f"{what} must be a whole number of Hz, got {rate!r}.")
    value = int(rate)  # type: ignore[call-overload]  # as above: these Reals have __int__
    if not MIN_RATE <= value <= MAX_RATE:
        raise AudioError(
            f"Absurd {what} {value} Hz: expected {MIN_RATE}..{MAX_RATE} Hz "
            "(8000, 16000, 24000, 44100 and 48000 are the usual ones)."
        )
    return value
