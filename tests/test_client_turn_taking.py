"""Turn taking without widgets: barge-in, truncation by what was heard, push-to-talk as manual
mode and the silence that ends a VAD turn (:mod:`realtime_nb.client.turn_taking`).

A real Session against the scripted fake server (``fake_session``); the listener (the
browser's player in the panel) and the microphone are played by the test, which says what was
stopped, what was heard and when a take ended. The session calls the rules ask for are
collected in order (as the panel's outbox does) and run when the test says, so each test sees
both what was asked and what the server received.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fake_session import appended_audio, fake, sent, session, until

from realtime_nb import Session
from realtime_nb.client.testing import FakeRealtimeServer, tone_pcm16
from realtime_nb.client.turn_taking import (
    PAD_MARGIN_MS,
    TurnTaking,
    end_of_turn_silence_ms,
    turn_detection_of,
)
from realtime_nb.vad import SemanticVadSettings, ServerVadSettings

__all__ = ["fake", "session"]  # the fixtures, used by name


class Calls:
    """The ``run`` of :class:`TurnTaking`: session calls kept in order, run on :meth:`run`."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self.labels: list[str] = []

    def put(self, label: str, fn: Callable[[], Awaitable[Any]]) -> None:
        self.queued.append((label, fn))
        self.labels.append(label)

    async def run(self) -> None:
        while self.queued:
            _label, fn = self.queued.pop(0)
            await fn()


async def assistant_audio_item(session: Session, *, finished: bool) -> str:
    """Ask for a spoken answer; return its item id once audio arrived (and the response is
    done when ``finished``; otherwise it is still generating)."""
    await session.create_item(text="Talk to me.")
    await session.create_response()
    ev = await session.wait_for("response.output_audio.delta")
    if finished:
        await session.wait_for("response.done", timeout=10)
    return str(ev["item_id"])


# ----------------------------------------------------------------------------- reading the config
def test_before_the_first_echo_turn_detection_is_the_service_default_server_vad() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    assert s.config is None
    assert turn_detection_of(s) == {"type": "server_vad"}


def test_the_silence_that_ends_a_vad_turn_comes_from_the_vad_settings() -> None:
    """server_vad without ``silence_duration_ms`` waits the service's default (200 ms, not the
    docs' 500); semantic_vad its eagerness's longest wait (auto = medium)."""
    default = ServerVadSettings().silence_duration_ms
    assert end_of_turn_silence_ms(None) == 0.0
    assert end_of_turn_silence_ms({"type": "server_vad"}) == default + PAD_MARGIN_MS == 500
    assert end_of_turn_silence_ms({"type": "server_vad", "silence_duration_ms": 800}) == 1100
    for eagerness, wait in SemanticVadSettings.MAX_WAIT_MS.items():
        td = {"type": "semantic_vad", "eagerness": eagerness}
        assert end_of_turn_silence_ms(td) == wait + PAD_MARGIN_MS
    assert end_of_turn_silence_ms({"type": "semantic_vad"}) == 4000 + PAD_MARGIN_MS


# ----------------------------------------------------------------------------- barge-in
async def test_a_speech_barge_in_leaves_the_cancel_to_the_server_and_truncates_at_what_was_heard(
        fake: FakeRealtimeServer, session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    item = await assistant_audio_item(session, finished=True)
    turns.playing(item, 0)
    turns.playback_stopped("speech", reported=True)
    assert calls.labels == [], "the server's VAD cancels a running response itself"
    record = turns.heard(item, 420)
    assert calls.labels == ["conversation.item.truncate"]
    await calls.run()
    (truncate,) = sent(fake, "conversation.item.truncate")
    assert (truncate["item_id"], truncate["content_index"], truncate["audio_end_ms"]) == (
        item, 0, 420)
    assert turns.truncations == [record] == [{
        "item_id": item, "audio_end_ms": 420, "reason": "speech",
        "result": "conversation.item.truncated"}]
    assert sent(fake, "response.cancel") == []


async def test_a_forced_barge_in_cancels_the_running_response_at_once(
        fake: FakeRealtimeServer, session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    await assistant_audio_item(session, finished=False)
    turns.playback_stopped("push-to-talk", reported=True)
    assert calls.labels == ["response.cancel"]
    await calls.run()
    await session.wait_for("response.done", timeout=10)
    assert list(session.responses.values())[-1].status == "cancelled"


async def test_the_player_s_own_stop_cancels_the_response_before_the_truncate(
        fake: FakeRealtimeServer, session: Session) -> None:
    """A stop nobody in the kernel asked for (the player's Stop button) is reported as heard
    without a reason: the item's response is cancelled, then the item truncated."""
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    item = await assistant_audio_item(session, finished=False)
    record = turns.heard(item, 150)
    assert record is not None and record["reason"] == "stop button"
    assert calls.labels == ["response.cancel", "conversation.item.truncate"]
    await calls.run()
    types = [e["type"] for e in fake.received]
    assert types.index("response.cancel") < types.index("conversation.item.truncate")


async def test_a_stop_with_nothing_playing_truncates_nothing(session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    turns.playback_stopped("interrupt", reported=True)
    assert turns.heard(None, 0) is None
    assert calls.labels == [] and turns.truncations == []


async def test_interrupt_response_false_keeps_the_assistant_talking_unless_forced(
        session: Session) -> None:
    turns = TurnTaking(session, Calls().put)
    assert turns.interrupts()
    await session.update(turn_detection={"type": "server_vad", "interrupt_response": False})
    assert not turns.interrupts()
    assert turns.interrupts(force=True)


async def test_a_truncate_past_the_audio_is_kept_as_the_benign_race_it_is(
        session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    item = await assistant_audio_item(session, finished=True)
    turns.heard(item, 60_000)
    await calls.run()  # does not raise
    assert turns.truncations[-1]["result"] == "item_truncate_invalid_audio_end_ms"


# ----------------------------------------------------------------------------- push-to-talk
async def test_push_to_talk_turns_detection_off_and_hands_free_restores_the_vad_it_replaced(
        session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    await session.update(turn_detection={"type": "server_vad", "threshold": 0.8})
    turns.mode_changed("push-to-talk")
    await calls.run()
    assert turn_detection_of(session) is None and turns.manual
    assert turns.vad_before_ptt is not None and turns.vad_before_ptt["threshold"] == 0.8
    turns.mode_changed("hands-free")
    await calls.run()
    td = turn_detection_of(session)
    assert td["type"] == "server_vad" and td["threshold"] == 0.8
    assert calls.labels == ["push-to-talk: turn detection off",
                            "hands-free: turn detection restored"]


async def test_hands_free_restores_nothing_once_a_vad_was_chosen_in_push_to_talk(
        session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    turns.mode_changed("push-to-talk")
    await calls.run()
    turns.vad_chosen()
    turns.mode_changed("hands-free")
    assert calls.labels == ["push-to-talk: turn detection off"]


async def test_a_manual_take_is_committed_then_answered(fake: FakeRealtimeServer,
                                                        session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    await session.update(turn_detection=None)
    await session.append(tone_pcm16(600))
    turns.take_ended()
    assert calls.labels == ["commit + response.create"]
    await calls.run()
    await session.wait_for("response.done", timeout=10)
    types = [e["type"] for e in fake.received]
    assert types.count("input_audio_buffer.commit") == 1
    assert types.index("input_audio_buffer.commit") < types.index("response.create")


async def test_a_recorded_take_with_semantic_vad_is_followed_by_its_longest_wait(
        fake: FakeRealtimeServer, session: Session) -> None:
    calls = Calls()
    turns = TurnTaking(session, calls.put)
    await session.update(turn_detection={"type": "semantic_vad", "eagerness": "high"})
    pcm = tone_pcm16(300)
    turns.send_take(pcm)
    await calls.run()
    padding = b"\0" * ((2000 + PAD_MARGIN_MS) * 48)
    await until(lambda: len(appended_audio(fake)) >= len(pcm) + len(padding))
    assert appended_audio(fake) == pcm + padding
    assert sent(fake, "input_audio_buffer.commit") == [], "the server's VAD commits, not us"
