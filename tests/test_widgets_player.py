"""PlayerWidget, kernel side: audio goes out as binary buffers, reports come back as Played.

A recording comm stands in for the browser; the browser's reports are delivered through the
widget's comm handler. The browser half is tested end to end in tests/browser/.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from audio_fixtures import tone_pcm16
from widget_comm import RecordingComm, browser_msg, recording_comm

from realtime_nb.audio import Audio, AudioError
from realtime_nb.widgets import Played, PlayerWidget

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")


def _pcm(ms: int, rate: int = 24000) -> bytes:
    return tone_pcm16(440, ms, rate, amp=8000 / 32768)


def _comm(player: PlayerWidget) -> RecordingComm:
    assert isinstance(player.comm, RecordingComm)
    return player.comm


def test_play_chunk_sends_pcm16_as_a_binary_buffer() -> None:
    player = PlayerWidget()
    assert player.play_chunk("item_1", _pcm(100)) is True
    ((content, buffers),) = _comm(player).custom()
    assert content == {"type": "audio", "item_id": "item_1", "seq": 0, "sample_rate": 24000}
    assert bytes(buffers[0]) == _pcm(100)
    assert player.sent_ms("item_1") == 100.0


def test_audio_at_another_rate_is_resampled_to_24k_as_one_stream_per_item() -> None:
    """Chunked 16 kHz audio comes out as the whole item resampled at once would, edges too."""
    player = PlayerWidget()
    source = _pcm(1000, rate=16000)
    for i in range(0, len(source), 3200):
        player.play_chunk("item_1", source[i:i + 3200], sample_rate=16000)
    player.end_item("item_1")
    assert all(c["sample_rate"] == 24000 for c, _ in _comm(player).custom())
    sent = np.frombuffer(b"".join(bytes(b[0]) for _, b in _comm(player).custom()), "<i2")
    whole = Audio.from_pcm16(source, 16000).resample(24000).samples
    assert len(sent) == len(whole) == 24000
    assert np.max(np.abs(sent.astype(int) - whole.astype(int))) <= 2
    assert player.sent_ms("item_1") == 1000.0


def test_an_odd_number_of_bytes_is_refused() -> None:
    with pytest.raises(AudioError, match="odd number of bytes"):
        PlayerWidget().play_chunk("item_1", b"\x00\x01\x02")


def test_stop_with_nothing_sent_resolves_at_once_without_a_round_trip() -> None:
    player = PlayerWidget()
    future = player.stop()
    assert future.done() and future.result() == Played(None, 0, "stopped")
    assert _comm(player).custom() == []


def test_stop_resolves_with_the_played_ms_the_browser_reports() -> None:
    player = PlayerWidget()
    seen: list[Played] = []
    player.play_chunk("item_1", _pcm(2000))
    future = player.stop(seen.append)
    content, _ = _comm(player).custom()[-1]
    assert content["type"] == "stop" and not future.done()
    browser_msg(player, {"type": "stopped", "request_id": content["request_id"],
                         "item_id": "item_1", "played_ms": 1104.0, "dropped_ms": 896.0})
    assert future.result() == Played("item_1", 1104, "stopped", 896)
    assert seen == [future.result()]
    assert (player.playing, player.item_id, player.played_ms) == (False, "item_1", 1104)


def test_chunks_of_a_cut_item_are_dropped() -> None:
    """Deltas of an interrupted response that arrive after the cut must not play."""
    player = PlayerWidget()
    player.play_chunk("item_1", _pcm(100))
    future = player.stop()
    browser_msg(player, {"type": "stopped", "request_id": 1, "item_id": "item_1",
                         "played_ms": 40.0, "dropped_ms": 60.0})
    assert future.done()
    sent_before = len(_comm(player).custom())
    assert player.play_chunk("item_1", _pcm(100)) is False
    assert player.play_chunk("item_2", _pcm(100)) is True
    assert len(_comm(player).custom()) == sent_before + 1


def test_progress_reports_update_the_traits_and_reach_the_callbacks() -> None:
    player = PlayerWidget()
    seen: list[Played] = []
    player.on_played(seen.append)
    browser_msg(player, {"type": "started", "item_id": "item_1"})
    assert player.playing
    browser_msg(player, {"type": "played", "item_id": "item_1", "played_ms": 300.0,
                         "event": "progress", "buffered_ms": 500.0})
    assert (player.playing, player.item_id, player.played_ms) == (True, "item_1", 300)
    browser_msg(player, {"type": "played", "item_id": "item_1", "played_ms": 800.0,
                         "event": "drained", "buffered_ms": 0.0})
    assert (player.playing, player.played_ms) == (False, 800)
    assert [p.event for p in seen] == ["started", "progress", "drained"]
    assert player.played_ms_of("item_1") == 800 and player.played_ms_of("other") == 0


def test_a_stop_from_the_widgets_button_reaches_the_callbacks() -> None:
    """The page's Stop button cuts too; the Session learns it through on_played."""
    player = PlayerWidget()
    seen: list[Played] = []
    player.on_played(seen.append)
    player.play_chunk("item_1", _pcm(1000))
    browser_msg(player, {"type": "stopped", "request_id": None, "item_id": "item_1",
                         "played_ms": 250.0, "dropped_ms": 750.0})
    assert seen == [Played("item_1", 250, "stopped", 750)]
    assert player.play_chunk("item_1", _pcm(100)) is False


async def test_stop_can_be_awaited_from_a_task() -> None:
    player = PlayerWidget()
    player.play_chunk("item_1", _pcm(500))
    future = player.stop()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, browser_msg, player,
                    {"type": "stopped", "request_id": 1, "item_id": "item_1",
                     "played_ms": 120.0, "dropped_ms": 380.0})
    played = await asyncio.wait_for(future, timeout=2)
    assert played.played_ms == 120


def test_volume_is_limited_to_0_to_1() -> None:
    import traitlets

    with pytest.raises(traitlets.TraitError):
        PlayerWidget(volume=1.5)
