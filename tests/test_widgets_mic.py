"""MicWidget, kernel side: what arrives from the browser becomes MicChunks, losses are counted.

No browser here: a recording comm stands in for the frontend, and browser messages are
delivered through the widget's comm handler with their binary buffers, as the kernel does.
The browser half is tested end to end in tests/browser/.
"""

from __future__ import annotations

import numpy as np
import pytest
import traitlets
from widget_comm import RecordingComm, browser_msg, browser_update, recording_comm

from realtime_nb.audio import Audio
from realtime_nb.widgets import MicChunk, MicWidget

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


def _pcm(n: int = 2400, value: int = 1000) -> bytes:
    return (np.full(n, value, dtype="<i2")).tobytes()


def _audio_msg(seq: int, take: int = 1, **extra: object) -> dict[str, object]:
    return {"type": "audio", "take": take, "seq": seq, "sample_rate": 24000, "samples": 2400,
            "t_ms": seq * 100.0, "final": False, "muted": False, "level": -20.0, **extra}


def _started(mic: MicWidget, take: int = 1) -> None:
    browser_msg(mic, {"type": "started", "take": take, "context_rate": 24000,
                      "resampler": "browser", "startup_ms": 120.0, "settings": {}})


def test_defaults_keep_the_browsers_voice_processing_on() -> None:
    """Users talk through speakers: echo cancellation, noise suppression and AGC default on."""
    mic = MicWidget()
    assert (mic.echo_cancellation, mic.noise_suppression, mic.auto_gain_control) == (
        True, True, True)
    assert (mic.mode, mic.chunk_ms, mic.recording, mic.status) == ("hands-free", 100, False, "idle")


@pytest.mark.parametrize("chunk_ms", [19, 101, 0])
def test_chunk_ms_outside_20_to_100_is_refused(chunk_ms: int) -> None:
    with pytest.raises(traitlets.TraitError, match=r"20\.\.100"):
        MicWidget(chunk_ms=chunk_ms)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(traitlets.TraitError):
        MicWidget(mode="always-on")


def test_audio_message_becomes_a_mic_chunk_ready_for_the_wire() -> None:
    mic = MicWidget()
    got: list[MicChunk] = []
    mic.on_audio(got.append)
    _started(mic)
    browser_msg(mic, _audio_msg(0), [_pcm()])
    (chunk,) = got
    assert (chunk.take, chunk.seq, chunk.sample_rate, chunk.format) == (1, 0, 24000, "audio/pcm")
    assert chunk.duration_ms == 100.0
    assert chunk.data == _pcm()
    assert chunk.to_event()["type"] == "input_audio_buffer.append"
    assert isinstance(chunk.audio, Audio) and len(chunk.audio) == 2400
    assert chunk.level_dbfs == -20.0


def test_memoryview_buffers_from_the_comm_are_accepted() -> None:
    """The kernel hands binary buffers over as memoryviews, not bytes."""
    mic = MicWidget()
    got: list[MicChunk] = []
    mic.on_audio(got.append)
    browser_msg(mic, _audio_msg(0), [memoryview(_pcm())])
    assert got[0].data == _pcm()


async def test_mic_chunks_are_not_checked_again_for_float32_by_session_append() -> None:
    """The worklet makes PCM16 itself: its chunks carry that (``CapturedPCM16``), and
    ``Session.append`` skips the float32 check for them — plain bytes are still checked."""
    from realtime_nb import RealtimeError, Session
    from realtime_nb.audio import CapturedPCM16

    mic = MicWidget()
    got: list[MicChunk] = []
    mic.on_audio(got.append)
    browser_msg(mic, _audio_msg(0), [memoryview(_pcm())])
    assert isinstance(got[0].data, CapturedPCM16) and got[0].data == _pcm()
    floats = np.linspace(-0.5, 0.5, 2400, dtype="<f4").tobytes()
    s = Session(url="ws://127.0.0.1:9/v1/realtime")  # never connected: appends are queued
    with pytest.raises(RealtimeError) as info:
        await s.append(floats)
    assert info.value.code == "float32_audio"
    await s.append(CapturedPCM16(floats))
    assert len(s.pending) == 1


def test_audio_at_another_rate_is_resampled_to_24k() -> None:
    mic = MicWidget()
    got: list[MicChunk] = []
    mic.on_audio(got.append)
    browser_msg(mic, _audio_msg(0, sample_rate=48000), [_pcm(4800)])
    assert got[0].sample_rate == 24000
    assert abs(len(got[0].audio) - 2400) <= 1


def test_a_gap_in_sequence_numbers_counts_as_lost_chunks() -> None:
    mic = MicWidget()
    _started(mic)
    for seq in (0, 1, 4, 5):
        browser_msg(mic, _audio_msg(seq), [_pcm()])
    assert (mic.stats.chunks, mic.stats.lost) == (4, 2)


def test_chunks_reported_sent_but_never_received_count_as_lost() -> None:
    """The browser's stop report carries its chunk count; missing tail chunks show up there."""
    mic = MicWidget()
    _started(mic)
    for seq in range(3):
        browser_msg(mic, _audio_msg(seq), [_pcm()])
    browser_msg(mic, {"type": "stopped", "take": 1, "chunks": 5})
    assert (mic.stats.chunks, mic.stats.chunks_sent, mic.stats.lost) == (3, 5, 2)


def test_a_chunk_arriving_after_the_stop_report_is_not_counted_lost() -> None:
    """Messages may overtake each other on the way to the kernel: the count must heal."""
    mic = MicWidget()
    _started(mic)
    browser_msg(mic, _audio_msg(0), [_pcm()])
    browser_msg(mic, {"type": "stopped", "take": 1, "chunks": 2})
    assert mic.stats.lost == 1
    browser_msg(mic, _audio_msg(1, final=True), [_pcm(100)])
    assert (mic.stats.lost, mic.stats.chunks) == (0, 2)


def test_each_take_restarts_the_counters() -> None:
    mic = MicWidget()
    _started(mic, take=1)
    browser_msg(mic, _audio_msg(0, take=1), [_pcm()])
    browser_msg(mic, _audio_msg(1, take=1), [_pcm()])
    _started(mic, take=2)
    browser_msg(mic, _audio_msg(0, take=2), [_pcm()])
    assert (mic.stats.take, mic.stats.chunks, mic.stats.lost) == (2, 1, 0)
    assert mic.stats.startup_ms == 120.0 and mic.stats.duration_ms == 100.0


def test_a_failing_callback_does_not_starve_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    mic = MicWidget()
    got: list[MicChunk] = []

    def broken(_chunk: MicChunk) -> None:
        raise RuntimeError("boom")

    mic.on_audio(broken)
    mic.on_audio(got.append)
    browser_msg(mic, _audio_msg(0), [_pcm()])
    assert len(got) == 1
    assert "boom" in capsys.readouterr().err


def test_on_audio_remove_stops_the_calls() -> None:
    mic = MicWidget()
    got: list[MicChunk] = []
    mic.on_audio(got.append)
    mic.on_audio(got.append, remove=True)
    browser_msg(mic, _audio_msg(0), [_pcm()])
    assert got == []


def test_recording_set_in_the_kernel_is_sent_to_the_browser() -> None:
    mic = MicWidget()
    comm = mic.comm
    assert isinstance(comm, RecordingComm)
    mic.start()
    mic.muted = True
    assert {"recording": True} in comm.updates() and {"muted": True} in comm.updates()


def test_the_browser_can_stop_recording_and_report_an_error() -> None:
    mic = MicWidget(recording=True)
    browser_update(mic, recording=False, status="error", error="No microphone was found.")
    assert (mic.recording, mic.status, mic.error) == (False, "error", "No microphone was found.")


def test_the_es_module_and_css_are_served_from_the_package_files() -> None:
    mic = MicWidget()
    assert "registerProcessor(\"rtnb-capture\"" in mic._esm and "export default" in mic._esm
    assert ".rtnb-mic" in mic._css
