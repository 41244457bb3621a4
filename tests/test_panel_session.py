"""SessionPanel driving a real Session against the scripted fake server (no browser).

What is pinned down: microphone chunks reach the server in order; push-to-talk is manual mode
(the panel switches turn detection, commits and asks for a response on release, and hands-free
restores the VAD it replaced); a record-and-send take (a real Chromium MediaRecorder WebM file)
is decoded, appended and committed; assistant audio reaches the player in batches; a barge-in
truncates at exactly the milliseconds the browser reports as played (cancelling only when the
server does not), and the benign races stay notes, not errors; the API key never reaches a
widget. The browser is a recording comm: its messages are delivered through the widgets' comm
handlers as the page would send them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_session import appended_audio, fake, sent, until
from ipywidgets.widgets.widget import _instances
from widget_comm import RecordingComm, browser_msg, browser_update, recording_comm

from realtime_nb import Session
from realtime_nb.audio import chunks, to_pcm16
from realtime_nb.client.testing import FakeRealtimeServer, tone_pcm16
from realtime_nb.widgets.panel import SessionPanel

__all__ = ["fake", "recording_comm"]  # the fixtures, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")

WEBM = Path(__file__).parent / "data" / "chromium_mediarecorder.webm"
SECRET = "sk-test-panel-9f8e7d6c5b4a"


@pytest.fixture
async def panel(fake: FakeRealtimeServer) -> AsyncIterator[SessionPanel]:
    s = Session(url=fake.url)
    p = SessionPanel(s, timeline=False)
    await p.connect({"audio": {"input": {"transcription": {"model": "whisper-1"}}}})
    await p.idle()
    yield p
    p.close()
    await s.close()


def talk(panel: SessionPanel, pcm: bytes, take: int = 1) -> None:
    """What the page sends for one mic take: started, 100 ms chunks, stopped."""
    browser_msg(panel.mic, {"type": "started", "take": take})
    n = 0
    for n, c in enumerate(chunks(pcm, "audio/pcm", 100)):
        browser_msg(panel.mic, {"type": "audio", "take": take, "seq": n, "sample_rate": 24000,
                                "t_ms": n * 100.0}, [memoryview(c.data)])
    browser_msg(panel.mic, {"type": "stopped", "take": take, "chunks": n + 1})


def player_custom(panel: SessionPanel) -> list[tuple[dict[str, Any], list[Any]]]:
    comm = panel.player.comm
    assert isinstance(comm, RecordingComm)
    return comm.custom()


async def answer_with_audio(panel: SessionPanel, fake: FakeRealtimeServer) -> str:
    """Have the assistant answer a text turn; return its item id once audio reached the player."""
    await panel.session.create_item(text="Talk to me.")
    await panel.session.create_response()
    ev = await panel.session.wait_for("response.output_audio.delta")
    item = ev["item_id"]
    await until(lambda: panel.player.sent_ms(item) > 0)
    return str(item)


# ----------------------------------------------------------------------------- capture
async def test_mic_chunks_are_appended_in_order(fake: FakeRealtimeServer,
                                                panel: SessionPanel) -> None:
    pcm = tone_pcm16(1000, 300) + tone_pcm16(700, 500)
    talk(panel, pcm)
    await panel.idle()
    await until(lambda: len(appended_audio(fake)) >= len(pcm))
    got = appended_audio(fake)
    assert got[: len(pcm)] == pcm
    assert got[len(pcm):] == b"\0" * (len(got) - len(pcm)), \
        "only the silence that ends a VAD turn cut by the stop may follow"


async def test_browser_messages_on_a_subshell_thread_reach_the_session_through_its_loop(
        fake: FakeRealtimeServer, panel: SessionPanel) -> None:
    """ipykernel 7 may hand widget messages to a subshell thread running its own event loop.

    Sending on the session's socket from there loses frames; the panel hands every browser
    message to the loop it was created on, in order.
    """
    pcm = tone_pcm16(700, 300) + tone_pcm16(500, 600)

    def subshell() -> None:
        async def deliver() -> None:
            talk(panel, pcm)

        asyncio.run(deliver())

    await asyncio.to_thread(subshell)
    await asyncio.sleep(0.05)
    await panel.idle()
    await until(lambda: len(appended_audio(fake)) >= len(pcm))
    assert appended_audio(fake)[: len(pcm)] == pcm
    assert panel._outbox._task is not None
    assert panel._outbox._task.get_loop() is asyncio.get_running_loop()


async def test_push_to_talk_is_manual_mode_with_a_commit_and_a_response_per_release(
        fake: FakeRealtimeServer, panel: SessionPanel) -> None:
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    assert panel.session.config["audio"]["input"]["turn_detection"] is None
    panel.refresh()
    assert "Push-to-talk" in panel.mode_note.value and "server_vad" in panel.mode_note.value
    talk(panel, tone_pcm16(800))
    await panel.idle()
    await panel.session.wait_for("response.done", timeout=10)
    types = [e["type"] for e in fake.received]
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    assert types.count("input_audio_buffer.commit") == 1
    panel.refresh()
    user, assistant = list(panel.transcript.rows.values())[-2:]
    assert "hello there" in user
    assert "First part. Second part. Third part." in assistant


async def test_hands_free_restores_the_vad_push_to_talk_replaced(panel: SessionPanel) -> None:
    await panel.session.update(turn_detection={"type": "server_vad", "threshold": 0.8})
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    assert panel.session.config["audio"]["input"]["turn_detection"] is None
    panel.mic.mode = "hands-free"
    await panel.idle()
    td = panel.session.config["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and td["threshold"] == 0.8


async def test_choosing_a_vad_in_the_settings_takes_the_mic_out_of_push_to_talk(
        panel: SessionPanel) -> None:
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    panel.refresh()
    selector = panel.controls.inputs["audio.input.turn_detection"]
    browser_update(selector, index=[v for _l, v in selector.options].index("semantic_vad"))
    await panel.idle()
    assert panel.mic.mode == "hands-free"
    assert panel.session.config["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"


async def test_too_short_a_push_is_a_note_with_the_hint(panel: SessionPanel) -> None:
    """A 40 ms press cannot be committed (< 100 ms): refused before sending, explained."""
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    talk(panel, tone_pcm16(40))
    await panel.idle()
    panel.refresh()
    assert panel.errors[-1][1].code == "input_audio_buffer_commit_empty"  # type: ignore[attr-defined]
    assert "rtnb-benign-box" in panel.status.value and "100" in panel.status.value


async def test_a_recorded_webm_take_is_decoded_appended_committed_and_answered(
        fake: FakeRealtimeServer, panel: SessionPanel) -> None:
    """The ipywebrtc path in manual mode, with a file Chromium's MediaRecorder made."""
    await panel.session.update(turn_detection=None)
    panel.capture = "recorder"
    assert panel.capture_box.children == (panel.recorder,)
    webm = WEBM.read_bytes()
    browser_update(panel.recorder.recorder.audio, value=memoryview(webm))
    await panel.idle()
    await panel.session.wait_for("response.done", timeout=10)
    appended = appended_audio(fake)
    assert appended == to_pcm16(webm)
    assert len(appended) == 3000 * 48, "3 s of PCM16 at 24 kHz"
    types = [e["type"] for e in fake.received]
    assert types.count("input_audio_buffer.commit") == 1
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    user = next(it for it in panel.session.items.list() if it.role == "user")
    assert user.duration_ms == 3000
    assert "take 1: 3.0 s sent" in panel.recorder.status.value


async def test_a_recorded_take_with_vad_on_is_followed_by_the_silence_that_ends_the_turn(
        fake: FakeRealtimeServer, panel: SessionPanel) -> None:
    await panel.session.update(turn_detection={"type": "server_vad",
                                               "silence_duration_ms": 500})
    panel.capture = "recorder"
    webm = WEBM.read_bytes()
    browser_update(panel.recorder.recorder.audio, value=memoryview(webm))
    await panel.idle()
    pcm = to_pcm16(webm)
    await until(lambda: len(appended_audio(fake)) >= len(pcm) + 800 * 48)
    appended = appended_audio(fake)
    assert appended[: len(pcm)] == pcm
    assert appended[len(pcm):] == b"\0" * (800 * 48), "silence_duration_ms + 300 ms of zeros"
    assert sent(fake, "input_audio_buffer.commit") == [], "the server's VAD commits, not us"


# ----------------------------------------------------------------------------- playback
async def test_assistant_audio_reaches_the_player_in_batches(fake: FakeRealtimeServer,
                                                             panel: SessionPanel) -> None:
    await panel.session.create_item(text="Talk to me.")
    await panel.session.create_response()
    await panel.session.wait_for("response.done", timeout=10)
    await asyncio.sleep(0.1)
    deltas = [e for e in panel.session.events
              if e.type == "response.output_audio.delta"]
    audio_msgs = [c for c, _b in player_custom(panel) if c["type"] == "audio"]
    assert len(deltas) == 9, "3 sentences of 600 ms in 200 ms deltas"
    assert 0 < len(audio_msgs) < len(deltas)
    item = deltas[0].event["item_id"]
    assert panel.player.sent_ms(item) == 1800


async def test_barge_in_truncates_at_the_ms_the_browser_played(fake: FakeRealtimeServer,
                                                               panel: SessionPanel) -> None:
    """speech_started while the assistant plays: stop, then truncate at the reported ms.

    The common case: the server has generated the whole answer (faster than real time) and the
    browser is still playing it. The server's VAD cancels a running response itself
    (interrupt_response), so the panel never sends response.cancel on speech.
    """
    item = await answer_with_audio(panel, fake)
    await panel.session.wait_for("response.done", timeout=10)
    await fake.push({"type": "input_audio_buffer.speech_started", "event_id": "ev_x",
                     "audio_start_ms": 0, "item_id": "item_user_2"})
    await until(lambda: any(c["type"] == "stop" for c, _b in player_custom(panel)))
    stop = [c for c, _b in player_custom(panel) if c["type"] == "stop"][-1]
    browser_msg(panel.player, {"type": "stopped", "item_id": item, "played_ms": 420,
                               "dropped_ms": 180, "request_id": stop["request_id"]})
    await panel.idle()
    (truncate,) = sent(fake, "conversation.item.truncate")
    assert (truncate["item_id"], truncate["content_index"], truncate["audio_end_ms"]) == (
        item, 0, 420)
    assert sent(fake, "response.cancel") == []
    assert panel.truncations == [{"item_id": item, "audio_end_ms": 420, "reason": "speech",
                                  "result": "conversation.item.truncated"}]
    assert panel.session.items[item].truncated_ms == 420


async def test_the_stop_button_cancels_the_response_and_truncates(fake: FakeRealtimeServer,
                                                                  panel: SessionPanel) -> None:
    item = await answer_with_audio(panel, fake)
    # The player's own Stop button: the browser reports a stop nobody in the kernel asked for.
    browser_msg(panel.player, {"type": "stopped", "item_id": item, "played_ms": 150,
                               "dropped_ms": 50})
    await panel.idle()
    await until(lambda: panel.session.responses and all(
        r.done for r in panel.session.responses.values()))
    types = [e["type"] for e in fake.received]
    assert types.index("response.cancel") < types.index("conversation.item.truncate")
    assert sent(fake, "conversation.item.truncate")[0]["audio_end_ms"] == 150
    assert list(panel.session.responses.values())[-1].status == "cancelled"


async def test_a_truncate_past_the_audio_is_a_benign_race(fake: FakeRealtimeServer,
                                                          panel: SessionPanel) -> None:
    """The browser may report more than the server kept: item_truncate_invalid_audio_end_ms."""
    await panel.session.create_item(text="Talk to me.")
    await panel.session.say("And?")
    item = [it.id for it in panel.session.items.list() if it.role == "assistant"][-1]
    panel.player.play_chunk(item, tone_pcm16(100))
    panel.interrupt()
    stop = [c for c, _b in player_custom(panel) if c["type"] == "stop"][-1]
    browser_msg(panel.player, {"type": "stopped", "item_id": item, "played_ms": 60_000,
                               "dropped_ms": 0, "request_id": stop["request_id"]})
    await panel.idle()
    assert panel.truncations[-1]["result"] == "item_truncate_invalid_audio_end_ms"
    panel.refresh()
    assert "rtnb-error-box" not in panel.status.value
    assert "rtnb-benign-box" in panel.status.value


async def test_pressing_push_to_talk_interrupts_the_assistant(fake: FakeRealtimeServer,
                                                              panel: SessionPanel) -> None:
    panel.mic.mode = "push-to-talk"
    await panel.idle()
    await answer_with_audio(panel, fake)
    browser_msg(panel.mic, {"type": "started", "take": 1})
    assert any(c["type"] == "stop" for c, _b in player_custom(panel))
    await panel.idle()
    await until(lambda: len(sent(fake, "response.cancel")) == 1)


async def test_the_mic_is_muted_only_while_the_assistant_plays(panel: SessionPanel) -> None:
    browser_update(panel.options["mute_while_playing"], value=True)
    assert panel.mic.mute_while_playing is True
    browser_msg(panel.player, {"type": "started", "item_id": "item_a"})
    assert panel.mic.muted is True
    browser_msg(panel.player, {"type": "played", "item_id": "item_a", "played_ms": 900,
                               "event": "drained", "buffered_ms": 0})
    assert panel.mic.muted is False


# ----------------------------------------------------------------------------- status, secrets
async def test_the_status_line_follows_the_connection(fake: FakeRealtimeServer) -> None:
    s = Session(url=fake.url)
    p = SessionPanel(s, timeline=False)
    assert "not connected" in p.status.value
    assert p.connect_button.layout.display == ""
    task = p.connect()
    await asyncio.sleep(0)
    p.refresh()
    assert "connecting" in p.status.value
    await task
    p.refresh()
    assert "● connected" in p.status.value and s.mirror.session_id in p.status.value
    assert p.connect_button.layout.display == "none"
    await fake.close_all(1012, "service restart")
    await until(lambda: s.state == "disconnected")
    p.refresh()
    assert "disconnected" in p.status.value and "connection_closed" in p.status.value
    assert p.connect_button.description == "Reconnect"
    p.close()
    await s.close()


async def test_a_failed_connect_shows_the_error_and_its_hint() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime", connect_timeout=2)
    p = SessionPanel(s, timeline=False)
    await p.connect()
    p.refresh()
    assert "connect_failed" in p.status.value and "Is the server running" in p.status.value
    p.close()


async def test_no_widget_state_or_message_carries_the_api_key() -> None:
    async with FakeRealtimeServer(require_key=SECRET, reply_text="Sure.") as fake:
        before = set(_instances)
        s = Session(url=fake.url, api_key=SECRET)
        p = SessionPanel(s)
        await p.connect({"instructions": "Be brief."})
        await p.idle()
        talk(p, tone_pcm16(600))
        await s.say("Hello")
        _ = p.recorder  # the ipywebrtc widgets too
        await p.idle()
        p.refresh()
        assert fake.handshakes[-1]["Authorization"] == f"Bearer {SECRET}", "the key was used"
        shown = []
        for w in [w for k, w in list(_instances.items()) if k not in before]:
            state = w.get_state()
            shown.append(json.dumps(state, default=lambda b: bytes(b).hex()))
            comm = w.comm
            if isinstance(comm, RecordingComm):
                shown.append(json.dumps([m for m, _b in comm.messages], default=str))
                shown.extend(bytes(b).hex() for _m, bufs in comm.messages for b in bufs)
        blob = "\n".join(shown)
        assert "Be brief." in blob, "the scan does see what the widgets hold"
        assert SECRET not in blob
        assert SECRET.encode().hex() not in blob
        p.close()
        await s.close()


async def test_a_flood_of_events_redraws_the_panel_a_few_times_not_once_per_event() -> None:
    """200 transcript deltas in 50 ms: the transcript row reaches the browser a handful of times.

    Events are fed through the session's receive path (what the socket loop calls per frame).
    """
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    p = SessionPanel(s, timeline=False, refresh_s=0.1)

    def feed(**event: Any) -> None:
        s._on_frame(json.dumps(event).encode())

    feed(type="response.created", response={"id": "resp_1", "status": "in_progress",
                                            "conversation_id": "conv_1", "output": []})
    msg = {"id": "item_a", "type": "message", "role": "assistant", "status": "in_progress",
           "content": []}
    feed(type="response.output_item.added", response_id="resp_1", output_index=0, item=msg)
    feed(type="conversation.item.added", item=msg, previous_item_id=None)
    await asyncio.sleep(0.15)
    row_html = p.transcript._rows["item_a"].html
    comm = row_html.comm
    assert isinstance(comm, RecordingComm)
    before = len(comm.updates())
    for i in range(200):
        feed(type="response.output_audio_transcript.delta", response_id="resp_1",
             item_id="item_a", output_index=0, content_index=0, delta=f"w{i} ")
        if i % 20 == 19:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.25)
    sends = len(comm.updates()) - before
    assert 1 <= sends <= 3, f"{sends} redraws for 200 events"
    assert "w199" in row_html.value
    p.close()


async def test_a_mic_stream_is_redrawn_in_the_turn_of_a_chunk_never_by_a_wake_up_between(
        fake: FakeRealtimeServer, panel: SessionPanel) -> None:
    """Redraws cost a wake-up of the kernel only when nothing else brings one: a chunk that
    comes once ``refresh_s`` has passed is drawn right after it (``call_soon``), and one that
    comes earlier leaves a timer for 1.5 ``refresh_s``, which the next chunk brings forward."""
    loop = asyncio.get_running_loop()
    pcm = tone_pcm16(100, 700)
    browser_msg(panel.mic, {"type": "started", "take": 1})

    def chunk(seq: int) -> None:
        browser_msg(panel.mic, {"type": "audio", "take": 1, "seq": seq, "sample_rate": 24000},
                    [memoryview(pcm)])

    # quiet: the connect's last redraw ran, and the next is free to come at once
    await until(lambda: panel._redraws.handle is None
                and time.monotonic() - panel._redraws.last > panel.refresh_s)
    chunk(0)
    handle = panel._redraws.handle
    assert handle is not None and not isinstance(handle, asyncio.TimerHandle)
    await asyncio.sleep(0)  # the redraw runs
    assert panel._redraws.handle is None
    assert "appended since last commit 100 ms" in panel.gauge.value
    chunk(1)  # too early: a timer, 1.5 refresh_s after the last redraw
    timer = panel._redraws.handle
    assert isinstance(timer, asyncio.TimerHandle)
    assert timer.when() - loop.time() == pytest.approx(1.5 * panel.refresh_s, abs=0.03)
    await asyncio.sleep(panel.refresh_s + 0.02)
    chunk(2)  # the time is up: drawn in this turn, the timer is gone
    assert timer.cancelled() and not isinstance(panel._redraws.handle, asyncio.TimerHandle)
    await asyncio.sleep(0)
    assert "appended since last commit 300 ms" in panel.gauge.value
    await until(lambda: len(appended_audio(fake)) >= 3 * len(pcm))
    assert appended_audio(fake)[: 3 * len(pcm)] == pcm * 3


async def test_panel_calls_run_in_the_order_asked_whether_they_wait_or_not() -> None:
    """The outbox starts a call at once when it is idle (an append reaches the socket inside
    ``put``); a call that waits holds back the ones after it; one put by a running call runs
    after it; failures are reported, never raised at the caller."""
    from realtime_nb.widgets._affinity import LoopAffinity
    from realtime_nb.widgets._outbox import Outbox as _Outbox

    order: list[str] = []
    failed: list[tuple[str, BaseException]] = []
    box = _Outbox(lambda label, exc: failed.append((label, exc)), LoopAffinity())
    gate = asyncio.Event()

    async def quick(name: str) -> None:
        order.append(name)

    async def slow() -> None:
        order.append("slow starts")
        await gate.wait()
        order.append("slow ends")

    async def outer() -> None:
        box.put("inner", lambda: quick("inner"))
        order.append("outer")

    async def broken() -> None:
        raise ValueError("no")

    box.put("quick", lambda: quick("at once"))
    assert order == ["at once"]
    box.put("slow", slow)
    box.put("a", lambda: quick("a"))
    assert order == ["at once", "slow starts"]
    gate.set()
    await box.join()
    box.put("outer", outer)
    box.put("b", lambda: quick("b"))
    box.put("broken", broken)
    await box.join()
    assert order == ["at once", "slow starts", "slow ends", "a", "outer", "inner", "b"]
    assert [(label, type(exc)) for label, exc in failed] == [("broken", ValueError)]


async def test_a_waiting_panel_call_is_cancelled_with_the_outbox() -> None:
    from realtime_nb.widgets._affinity import LoopAffinity
    from realtime_nb.widgets._outbox import Outbox as _Outbox

    seen: list[str] = []
    box = _Outbox(lambda label, exc: seen.append(label), LoopAffinity())

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    box.put("waits", waits)
    await asyncio.sleep(0)
    box.cancel()
    await asyncio.sleep(0.01)
    assert seen == ["cancelled"]


def test_a_live_part_sends_one_update_and_honours_observers() -> None:
    """The gauge is set without traitlets' machinery: the same ``update`` message, the same
    value read back; with an observer on ``value`` the ordinary assignment is used."""
    import ipywidgets

    from realtime_nb.widgets._redraw import show_live as _show

    w = ipywidgets.HTML("a")
    comm = w.comm
    assert isinstance(comm, RecordingComm)
    _show(w, "b")
    _show(w, "b")
    assert w.value == "b" and comm.updates() == [{"value": "b"}]
    seen: list[str] = []
    w.observe(lambda change: seen.append(change["new"]), names="value")
    _show(w, "c")
    assert w.value == "c" and seen == ["c"] and comm.updates()[-1] == {"value": "c"}


async def test_the_panel_s_timeline_sends_its_events_with_the_panel_s_redraws() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    p = SessionPanel(s, refresh_s=0.1)
    tl = p.timeline
    comm = tl.comm
    assert isinstance(comm, RecordingComm)
    before = len(comm.custom())
    for i in range(30):
        s._on_frame(json.dumps({"type": "response.output_audio_transcript.delta",
                                "response_id": "resp_1", "item_id": "item_a",
                                "output_index": 0, "content_index": 0,
                                "delta": f"w{i} "}).encode())
        assert tl._timer is None, "no timer of its own: the panel schedules its redraws"
    await asyncio.sleep(0.2)
    batches = [c for c, _b in comm.custom()[before:] if c.get("type") == "events"]
    assert 1 <= len(batches) <= 2
    assert [e["p"]["delta"] for b in batches for e in b["events"]] == [
        f"w{i} " for i in range(30)]
    p.close()


async def test_closing_the_session_elsewhere_updates_the_status_line(
        panel: SessionPanel) -> None:
    """``await session.close()`` in another cell must not leave the panel saying "connected"."""
    await until(lambda: "rtnb-state-connected" in panel.status.value, timeout=5)
    await panel.session.close()
    await until(lambda: "rtnb-state-closed" in panel.status.value, timeout=5)
    assert "■ closed" in panel.status.value
