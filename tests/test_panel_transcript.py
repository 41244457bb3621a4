"""TranscriptView: streaming turns keyed by item_id, in conversation order, whatever arrives first.

Server events are fed through the Session's own receive path (``_on_frame``, what the socket
loop calls with each frame), so the mirror the view reads is built exactly as it is live. The
sequences follow the service's documented order, with the transcription of the user's turn
arriving late (it is asynchronous: §5.2/§5.3 and gotcha 18 of realtime-protocol.md).
"""

from __future__ import annotations

import base64
import io
import json
import re
import wave
from typing import Any

import pytest
from audio_fixtures import tone_pcm16
from widget_comm import recording_comm

from realtime_nb import Session
from realtime_nb.widgets.transcript import TranscriptView

__all__ = ["recording_comm"]  # the fixture, used by name

pytestmark = pytest.mark.usefixtures("recording_comm")

RATE = 24_000


def feed(s: Session, **event: Any) -> None:
    """One server event through the session's receive path."""
    s._on_frame(json.dumps(event).encode())


def pcm(ms: int, level: int = 3000) -> bytes:
    return tone_pcm16(330, ms, RATE, amp=level / 32768)


def config(transcription: bool = True) -> dict[str, Any]:
    return {"type": "realtime", "id": "sess_1", "object": "realtime.session",
            "output_modalities": ["audio"],
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "transcription": {"model": "whisper-1"} if transcription
                                else None,
                                "turn_detection": {"type": "server_vad"}},
                      "output": {"format": {"type": "audio/pcm", "rate": 24000},
                                 "voice": "alloy"}}}


def user_turn(s: Session, item: str, previous: str | None, ms: int = 800) -> None:
    """The user speaks ``ms`` of audio; the server's VAD commits it as ``item``."""
    s.mirror.client_append(pcm(ms))
    feed(s, type="input_audio_buffer.speech_started", audio_start_ms=0, item_id=item)
    feed(s, type="input_audio_buffer.speech_stopped", audio_end_ms=ms, item_id=item)
    feed(s, type="input_audio_buffer.committed", item_id=item, previous_item_id=previous)
    user = {"id": item, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}
    feed(s, type="conversation.item.added", item=user, previous_item_id=previous)
    feed(s, type="conversation.item.done", item=user, previous_item_id=previous)


def assistant_turn(s: Session, rid: str, item: str, previous: str, words: list[str],
                   audio_ms: int = 0, finish: bool = True) -> None:
    feed(s, type="response.created", response={"id": rid, "status": "in_progress",
                                               "conversation_id": "conv_1", "output": []})
    msg = {"id": item, "type": "message", "role": "assistant", "status": "in_progress",
           "content": []}
    feed(s, type="response.output_item.added", response_id=rid, output_index=0, item=msg)
    feed(s, type="conversation.item.added", item=msg, previous_item_id=previous)
    for w in words:
        feed(s, type="response.output_audio_transcript.delta", response_id=rid, item_id=item,
             output_index=0, content_index=0, delta=w)
    if audio_ms:
        feed(s, type="response.output_audio.delta", response_id=rid, item_id=item,
             output_index=0, content_index=0,
             delta=base64.b64encode(pcm(audio_ms)).decode())
    if finish:
        finish_response(s, rid, item, "".join(words))


def finish_response(s: Session, rid: str, item: str, text: str,
                    status: str = "completed") -> None:
    done = {"id": item, "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_audio", "transcript": text}]}
    feed(s, type="response.output_audio_transcript.done", response_id=rid, item_id=item,
         output_index=0, content_index=0, transcript=text)
    feed(s, type="response.output_item.done", response_id=rid, output_index=0, item=done)
    feed(s, type="response.done", response={"id": rid, "status": status,
                                            "conversation_id": "conv_1", "output": [done],
                                            "usage": {"total_tokens": 3}})


def texts(view: TranscriptView) -> list[tuple[str, str]]:
    """(who, text) of each row, in display order."""
    out = []
    for row in view.rows.values():
        who = re.search(r'rtnb-turn-who">([^<]*)<', row).group(1)  # type: ignore[union-attr]
        text = re.search(r'rtnb-turn-text">([^<]*)<', row).group(1)  # type: ignore[union-attr]
        out.append((who, text))
    return out


@pytest.fixture
def session() -> Session:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    feed(s, type="session.created", session=config())
    return s


def test_a_late_transcription_fills_the_users_row_above_the_answer(session: Session) -> None:
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["Paris ", "is ", "sunny."])
    view.refresh()
    assert texts(view) == [("you", ""), ("assistant", "Paris is sunny.")]
    assert "transcribing…" in view.rows["item_u1"]
    feed(session, type="conversation.item.input_audio_transcription.delta", item_id="item_u1",
         content_index=0, delta="What is the weather ")
    feed(session, type="conversation.item.input_audio_transcription.completed",
         item_id="item_u1", content_index=0, transcript="What is the weather in Paris?")
    view.refresh()
    assert texts(view) == [("you", "What is the weather in Paris?"),
                           ("assistant", "Paris is sunny.")]


def test_two_conversations_interleaved_stay_apart(session: Session) -> None:
    """Deltas of the second turn arrive while the first user's transcription still streams."""
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["One."])
    user_turn(session, "item_u2", "item_a1")
    feed(session, type="conversation.item.input_audio_transcription.delta", item_id="item_u2",
         content_index=0, delta="second ")
    assistant_turn(session, "resp_2", "item_a2", "item_u2", ["Two", "..."], finish=False)
    feed(session, type="conversation.item.input_audio_transcription.delta", item_id="item_u1",
         content_index=0, delta="first")
    feed(session, type="conversation.item.input_audio_transcription.delta", item_id="item_u2",
         content_index=0, delta="question")
    view.refresh()
    assert texts(view) == [("you", "first"), ("assistant", "One."),
                           ("you", "second question"), ("assistant", "Two...")]
    assert "…" in view.rows["item_a2"], "the answer still streaming is marked"


def test_an_item_inserted_earlier_takes_its_place_in_the_conversation(session: Session) -> None:
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    view.refresh()
    note = {"id": "item_ctx", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": "Context first."}]}
    feed(session, type="conversation.item.added", item=note, previous_item_id=None)
    view.refresh()
    assert [w for w, _t in texts(view)] == ["you", "you"]
    assert list(view.rows) == ["item_ctx", "item_u1"]
    feed(session, type="conversation.item.deleted", item_id="item_ctx")
    view.refresh()
    assert list(view.rows) == ["item_u1"]


def test_rows_say_when_transcription_is_off_or_failed() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    feed(s, type="session.created", session=config(transcription=False))
    view = TranscriptView(s)
    user_turn(s, "item_u1", None, ms=1200)
    view.refresh()
    assert "1.2 s of audio · input transcription is off" in view.rows["item_u1"]
    feed(s, type="conversation.item.input_audio_transcription.failed", item_id="item_u1",
         content_index=0, error={"type": "transcription_error", "code": "audio_unintelligible",
                                 "message": "The audio could not be transcribed."})
    view.refresh()
    assert "transcription failed: The audio could not be transcribed." in view.rows["item_u1"]


def test_text_is_escaped(session: Session) -> None:
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["<b>bold</b> & co"])
    view.refresh()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in view.rows["item_a1"]
    assert "<b>bold" not in view.rows["item_a1"]


def _wav_ms(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() * 1000 / w.getframerate()


def test_replay_players_come_with_complete_audio(session: Session) -> None:
    """The user's recording once committed; the assistant's audio once its response is done."""
    view = TranscriptView(session)
    user_turn(session, "item_u1", None, ms=900)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["Hi."], audio_ms=1500, finish=False)
    view.refresh()
    user_player = view.player_of("item_u1")
    assert user_player is not None and user_player.format == "wav"
    assert _wav_ms(user_player.value) == 900
    assert view.player_of("item_a1") is None, "no player while the answer still streams"
    finish_response(session, "resp_1", "item_a1", "Hi.")
    view.refresh()
    assert _wav_ms(view.player_of("item_a1").value) == 1500  # type: ignore[union-attr]


def test_an_interrupted_answer_replays_what_was_heard(session: Session) -> None:
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["A long answer."], audio_ms=2000,
                   finish=False)
    feed(session, type="conversation.item.truncated", item_id="item_a1", content_index=0,
         audio_end_ms=700)
    finish_response(session, "resp_1", "item_a1", "A long answer.", status="cancelled")
    view.refresh()
    assert _wav_ms(view.player_of("item_a1").value) == 700  # type: ignore[union-attr]
    assert "cancelled" in view.rows["item_a1"]
    assert "cut at 0.7 s" in view.rows["item_a1"]


def test_refresh_sends_only_rows_that_changed(session: Session) -> None:
    view = TranscriptView(session)
    user_turn(session, "item_u1", None)
    assistant_turn(session, "resp_1", "item_a1", "item_u1", ["Done."])
    assert view.refresh() is True
    assert view.refresh() is False, "nothing new: nothing sent"


def plain(view: TranscriptView) -> list[tuple[str, str]]:
    """(who, text) of each row with the HTML escapes undone."""
    import html

    return [(who, html.unescape(text)) for who, text in texts(view)]


def test_mcp_listing_call_and_approval_rows_read_naturally(session: Session) -> None:
    view = TranscriptView(session)
    listing = {"id": "item_l", "type": "mcp_list_tools", "server_label": "calc", "tools": []}
    feed(session, type="conversation.item.added", previous_item_id=None, item=listing)
    feed(session, type="mcp_list_tools.in_progress", item_id="item_l")
    view.refresh()
    assert plain(view) == [("MCP calc", "")]
    assert "listing…" in view.rows["item_l"]
    feed(session, type="mcp_list_tools.completed", item_id="item_l")
    feed(session, type="conversation.item.done", previous_item_id=None, item={
        **listing, "tools": [{"name": "add_numbers", "input_schema": {}},
                             {"name": "erase_everything", "input_schema": {}}]})
    call = {"id": "item_c", "type": "mcp_call", "server_label": "calc", "name": "add_numbers",
            "arguments": "", "approval_request_id": "item_r", "output": None, "error": None}
    request = {"id": "item_r", "type": "mcp_approval_request", "server_label": "calc",
               "name": "add_numbers", "arguments": '{"a": 1, "b": 2}'}
    feed(session, type="response.created", response={"id": "resp_1", "status": "in_progress",
                                                      "conversation_id": "conv_1", "output": []})
    feed(session, type="response.output_item.added", response_id="resp_1", output_index=0,
         item=call)
    feed(session, type="conversation.item.added", previous_item_id="item_l", item=call)
    feed(session, type="response.mcp_call_arguments.delta", response_id="resp_1",
         item_id="item_c", output_index=0, delta='{"a": 1, ')
    view.refresh()
    assert plain(view)[1] == ("MCP calc", 'add_numbers({"a": 1, )')
    feed(session, type="response.mcp_call_arguments.done", response_id="resp_1",
         item_id="item_c", output_index=0, arguments='{"a": 1, "b": 2}')
    for ev_type in ("response.output_item.added", "conversation.item.added"):
        feed(session, type=ev_type, response_id="resp_1", output_index=1,
             previous_item_id="item_c", item=request)
    view.refresh()
    assert plain(view) == [
        ("MCP calc", "tools: add_numbers, erase_everything"),
        ("MCP calc", 'add_numbers({"a": 1, "b": 2})'),
        ("MCP calc", 'may I run add_numbers({"a": 1, "b": 2})?')]
    assert "waiting for approval" in view.rows["item_c"]
    assert "approval pending" in view.rows["item_r"]
    feed(session, type="conversation.item.added", previous_item_id="item_r", item={
        "id": "appr_1", "type": "mcp_approval_response", "approval_request_id": "item_r",
        "approve": True, "reason": "fine"})
    feed(session, type="response.mcp_call.in_progress", item_id="item_c", output_index=0)
    view.refresh()
    assert "running…" in view.rows["item_c"]
    assert "approved (fine)" in view.rows["item_r"]
    feed(session, type="response.mcp_call.completed", item_id="item_c", output_index=0)
    feed(session, type="conversation.item.done", previous_item_id="item_l", item={
        **call, "arguments": '{"a": 1, "b": 2}', "output": "3"})
    view.refresh()
    assert plain(view)[1] == ("MCP calc", 'add_numbers({"a": 1, "b": 2}) → 3')
    assert plain(view)[3] == ("you", "MCP: approved (fine)")


def test_a_failed_mcp_call_row_shows_the_error(session: Session) -> None:
    view = TranscriptView(session)
    feed(session, type="conversation.item.added", previous_item_id=None, item={
        "id": "item_c", "type": "mcp_call", "server_label": "calc", "name": "fail_loudly",
        "arguments": "{}", "output": None,
        "error": {"type": "tool_execution_error", "message": "refused <on purpose>"}})
    view.refresh()
    assert "failed: refused &lt;on purpose&gt;" in view.rows["item_c"]
def test_diarized_rows_show_speaker_labels() -> None:
    s = Session(url="ws://127.0.0.1:9/v1/realtime")
    feed(s, type="session.created", session=config())
    view = TranscriptView(s)
    user_turn(s, "item_u1", None, ms=1200)
    for seg_id, speaker, text in (("seg_1", "A", "Hello."), ("seg_2", "B", "Hi there.")):
        feed(s, type="conversation.item.input_audio_transcription.segment", item_id="item_u1",
             content_index=0, id=seg_id, speaker=speaker, start=0.0, end=0.5, text=text,
             event_id="event_1")
    feed(s, type="conversation.item.input_audio_transcription.completed", item_id="item_u1",
         content_index=0, transcript="Hello. Hi there.", usage={"type": "duration", "seconds": 2})
    view.refresh()
    assert "A: Hello. B: Hi there." in view.rows["item_u1"]
