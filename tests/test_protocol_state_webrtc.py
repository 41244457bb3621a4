"""The state machine's WebRTC output buffer: reply audio goes to the track, and
output_audio_buffer.* events follow the service's order (scripted, no sockets).
"""

from __future__ import annotations

import base64

from state_fixtures import append, core, manual, tone, types

from realtime_nb.protocol import Reply, SessionCore


def _speak(c: SessionCore, text: str = "hi") -> str:
    c.handle({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    c.handle({"type": "response.create"})
    rid = c.active_response
    c.drain()
    c.take_jobs()
    c.response_output(rid, Reply(text="Hello there. Bye."))
    c.response_audio(rid, tone(400), "Hello there.")
    c.response_audio(rid, tone(300), "Bye.")
    return rid


def test_webrtc_response_audio_goes_to_the_track_not_into_events():
    c = core(transport="webrtc")
    manual(c)
    rid = _speak(c)
    out = c.drain()
    assert "response.output_audio.delta" not in types(out)
    assert types(out).count("output_audio_buffer.started") == 1
    started = next(e for e in out if e["type"] == "output_audio_buffer.started")
    assert started["response_id"] == rid
    assert types(out).index("response.content_part.added") < types(out).index(
        "output_audio_buffer.started")
    assert [(k, r, len(p)) for k, r, p in c.take_playout()] == [
        ("audio", rid, 400 * 48), ("audio", rid, 300 * 48)]
    c.playout_idle(rid)  # a gap while the response is still generating: not the end
    assert c.drain() == [] and c.playing == rid
    c.response_finish(rid)
    assert types(c.drain())[-1] == "response.done"
    c.playout_idle(rid)
    (stopped,) = c.drain()
    assert stopped == {"type": "output_audio_buffer.stopped", "event_id": stopped["event_id"],
                       "response_id": rid}
    assert c.playing is None
    c.handle({"type": "conversation.item.retrieve", "item_id": c.items[-1]["id"]})
    retrieved = c.drain()[0]["item"]["content"][0]
    assert len(base64.b64decode(retrieved["audio"])) == 700 * 48  # the item still has its audio


def test_output_audio_buffer_clear_is_webrtc_only_and_cuts_the_track():
    ws = core()
    ws.handle({"type": "output_audio_buffer.clear", "event_id": "x"})
    (err,) = ws.drain()
    assert err["error"]["code"] == "invalid_value" and err["error"]["event_id"] == "x"
    c = core(transport="webrtc")
    manual(c)
    rid = _speak(c)
    c.response_finish(rid)
    c.drain()
    c.take_playout()
    c.handle({"type": "output_audio_buffer.clear"})
    (cleared,) = c.drain()
    assert cleared["type"] == "output_audio_buffer.cleared" and cleared["response_id"] == rid
    assert c.take_playout() == [("clear", rid, b"")]
    c.playout_idle(rid)  # the track reports the (cut) audio gone: no stopped after a clear
    assert c.drain() == []


def test_webrtc_barge_in_cancels_then_clears_the_playing_reply():
    c = core(transport="webrtc")
    rid = _speak(c)
    c.drain()
    c.handle(append(tone(300)))
    seq = types(c.drain())
    assert seq.index("input_audio_buffer.speech_started") < seq.index("response.done") < (
        seq.index("output_audio_buffer.cleared"))
    assert c.take_playout()[-1] == ("clear", rid, b"")
    assert c.playing is None


def test_websocket_sessions_never_emit_output_audio_buffer_events():
    c = core()
    rid = _speak(c)
    c.response_finish(rid)
    c.handle(append(tone(300)))
    assert not [t for t in types(c.drain()) if t.startswith("output_audio_buffer.")]
    assert c.take_playout() == []
