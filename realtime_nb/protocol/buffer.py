"""Input-buffer accounting, shared by the local server and the kernel-side mirror of it.

Both ends apply the very same rules, so what the Session shows as "in the buffer" is what the server
holds:

* Audio is counted in the session's input format (PCM16 at 24 kHz: 48 bytes per ms; G.711: 8).
* Every appended byte also advances the session's cumulative input timeline (``timeline_ms``), the
  clock that ``audio_start_ms`` / ``audio_end_ms`` refer to.
* Manual mode (turn detection ``null``): the buffer holds everything appended since the last
  commit or clear. A commit needs at least 100 ms of it.
* Turn-detection mode: the buffer holds the *current turn* only. Audio outside speech is kept as a
  rolling window (the prefix padding) but is not counted as buffered, and the server's VAD commits
  the turn (emptying the buffer) at speech end. So a manual commit right after speech ended finds
  0.00 ms: the classic "buffer is empty" error.
"""

from __future__ import annotations

from dataclasses import dataclass

# COMMIT_MIN_MS, the service's minimum for a commit (100 ms), lives in realtime_nb.audio (whose
# diagnose() warns about shorter audio) and is re-exported here: one value.
from realtime_nb.audio import COMMIT_MIN_MS, PCM, AudioError
from realtime_nb.audio import bytes_per_ms as _format_bytes_per_ms

__all__ = ["COMMIT_MIN_MS", "InputBuffer", "bytes_per_ms", "commit_empty_message"]


def bytes_per_ms(fmt: dict | str | None) -> int:
    """Bytes per millisecond of the session's input format (``audio/pcm`` 48, G.711 8).

    :func:`realtime_nb.audio.bytes_per_ms` by the format's type alone (GA or beta name; the
    ``rate`` of a format object is the validator's business); ``None`` and a format without a
    type are PCM16. An unknown type raises ``ValueError``.
    """
    t = fmt.get("type") if isinstance(fmt, dict) else fmt
    try:
        return _format_bytes_per_ms(PCM if t is None else t)
    except AudioError:
        raise ValueError(f"unknown audio format {fmt!r}") from None


def commit_empty_message(ms: float) -> str:
    """The service's exact message for a commit with too little audio."""
    return (
        "Error committing input audio buffer: buffer too small. Expected at least "
        f"{COMMIT_MIN_MS:.0f}ms of audio, but buffer only has {ms:.2f}ms of audio."
    )


@dataclass
class InputBuffer:
    """Byte and time accounting of the input audio buffer (no audio is stored here).

    ``start_ms`` is where the buffered audio starts on the cumulative timeline and ``timeline_ms``
    where it ends; ``buffered_ms`` is their difference, or 0 when turn detection is on and no
    speech is in progress.
    """

    bytes_per_ms: int = 48
    timeline_bytes: int = 0
    start_bytes: int = 0
    vad: bool = True
    speaking: bool = False

    @property
    def timeline_ms(self) -> float:
        return self.timeline_bytes / self.bytes_per_ms

    @property
    def start_ms(self) -> float:
        return self.start_bytes / self.bytes_per_ms

    @property
    def buffered_ms(self) -> float:
        if self.vad and not self.speaking:
            return 0.0
        return (self.timeline_bytes - self.start_bytes) / self.bytes_per_ms

    def set_format(self, bpm: int) -> None:
        """Change the input format; the timeline is kept in milliseconds."""
        if bpm == self.bytes_per_ms:
            return
        scale = bpm / self.bytes_per_ms
        self.timeline_bytes = round(self.timeline_bytes * scale)
        self.start_bytes = round(self.start_bytes * scale)
        self.bytes_per_ms = bpm

    def append(self, nbytes: int) -> None:
        """Audio was appended: the timeline moves on by ``nbytes``."""
        self.timeline_bytes += nbytes

    def drop_idle(self) -> None:
        """Turn-detection mode outside speech: what was appended is not buffered (the server
        keeps it only as a rolling prefix-padding window), so the buffer starts where the
        timeline ends. Nothing changes in manual mode or while speech is in progress."""
        if self.vad and not self.speaking:
            self.start_bytes = self.timeline_bytes

    def speech_started(self, audio_start_ms: float, floor_bytes: int | None = None) -> None:
        """VAD found speech (or an idle timeout commits silence as a turn): the turn starts at
        ``audio_start_ms`` (prefix padding included), never before ``floor_bytes`` — where the
        audio still held begins, i.e. where the last commit or clear ended (default: the
        buffer's current start)."""
        self.speaking = True
        floor = self.start_bytes if floor_bytes is None else floor_bytes
        self.start_bytes = max(floor, round(audio_start_ms * self.bytes_per_ms))

    def speech_stopped(self, audio_end_ms: float) -> None:
        self.speaking = False

    def committed(self, end_ms: float | None = None) -> float:
        """Empty the buffer (commit); return the ms that were committed."""
        ms = self.buffered_ms if end_ms is None else max(0.0, end_ms - self.start_ms)
        end = self.timeline_bytes if end_ms is None else round(end_ms * self.bytes_per_ms)
        self.start_bytes = min(self.timeline_bytes, max(self.start_bytes, end))
        self.speaking = False
        return ms

    def cleared(self, upto_bytes: int | None = None) -> None:
        """Empty the buffer (clear). ``upto_bytes``: the timeline position the clear was sent
        at (the mirror learns of it later): in manual mode audio appended after it stays
        buffered; in turn-detection mode nothing outside speech is buffered anyway."""
        if upto_bytes is None or self.vad:
            self.start_bytes = self.timeline_bytes
        else:
            self.start_bytes = max(self.start_bytes, upto_bytes)
        self.speaking = False
