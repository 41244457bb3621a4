"""Traces for the timeline tests: a real recorded session and a large synthetic one.

``REAL_TRACE`` (tests/data/timeline_session.jsonl, audio-free) was recorded from a real Session
against the local server (real VAD, ASR and TTS): two spoken turns with server VAD, a commit
refused locally and the same commit refused by the server, a cancel with nothing to cancel, a
beta field refused locally, push-to-talk turns with a too-short commit, a clear, a text turn.

:func:`synthetic_log` builds a long session with the realistic mix of a voice conversation:
100 ms appends all along, VAD turns, responses with floods of audio and transcript deltas, input
transcriptions, and a few errors of each kind (refused client events, server errors).
"""

from __future__ import annotations

import random
from pathlib import Path

from realtime_nb.client.errors import RealtimeError
from realtime_nb.client.eventlog import EventLog, audio_ref
from realtime_nb.protocol import commit_empty_message

REAL_TRACE = Path(__file__).parent / "data" / "timeline_session.jsonl"


def synthetic_log(n: int = 10_000, seed: int = 0) -> EventLog:
    """A log of exactly ``n`` events of a voice conversation (times from 0.2 s on)."""
    rng = random.Random(seed)
    log = EventLog()
    out: list[tuple[float, str, dict, RealtimeError | None]] = []
    ids = iter(range(10**9))
    ref = iter(range(10**9))

    def ev(t: float, d: str, event: dict, refused: RealtimeError | None = None) -> None:
        out.append((t, d, event, refused))

    def eid() -> str:
        return f"evt_{next(ids)}"

    session = {"type": "realtime", "id": "sess_synthetic", "model": "gpt-realtime",
               "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                   "turn_detection": {"type": "server_vad",
                                                      "silence_duration_ms": 500}},
                         "output": {"format": {"type": "audio/pcm", "rate": 24000},
                                    "voice": "alloy"}}}
    ev(0.2, "server", {"type": "session.created", "event_id": eid(), "session": session})
    ev(0.2, "local", {"type": "realtime_nb.connected", "session_id": "sess_synthetic"})
    t = 0.3
    audio_t0 = t
    turn = 0
    while len(out) < n:
        turn += 1
        speak = rng.uniform(1.5, 4.0)
        gap = rng.uniform(0.8, 2.0)
        start = t + gap
        stop = start + speak
        item = f"item_u{turn}"
        resp = f"resp_{turn}"
        out_item = f"item_a{turn}"
        # appends all along the turn (the mic streams continuously)
        end_appends = stop + 0.6 + rng.uniform(2.0, 4.0)
        a = t
        while a < end_appends:
            ev(a, "client", {"type": "input_audio_buffer.append", "event_id": eid(),
                             "audio": audio_ref(4800, next(ref))})
            a += 0.1
        vad_start = start + 0.25
        ev(vad_start, "server", {"type": "input_audio_buffer.speech_started", "event_id": eid(),
                                 "audio_start_ms": round((start - 0.3 - audio_t0) * 1000),
                                 "item_id": item})
        ts = stop + 0.55
        ev(ts, "server", {"type": "input_audio_buffer.speech_stopped", "event_id": eid(),
                          "audio_end_ms": round((stop + 0.5 - audio_t0) * 1000),
                          "item_id": item})
        ev(ts + 0.001, "server", {"type": "input_audio_buffer.committed", "event_id": eid(),
                                  "previous_item_id": None, "item_id": item})
        ev(ts + 0.002, "server", {"type": "conversation.item.added", "event_id": eid(),
                                  "item": {"id": item, "type": "message", "role": "user",
                                           "content": [{"type": "input_audio"}]}})
        ev(ts + 0.003, "server", {"type": "response.created", "event_id": eid(),
                                  "response": {"id": resp, "status": "in_progress"}})
        ev(ts + 0.004, "server", {"type": "rate_limits.updated", "event_id": eid(),
                                  "rate_limits": []})
        tr = ts + rng.uniform(0.2, 0.5)
        ev(tr, "server", {"type": "response.output_item.added", "event_id": eid(),
                          "response_id": resp, "output_index": 0,
                          "item": {"id": out_item, "type": "message", "role": "assistant"}})
        ev(tr + 0.001, "server", {"type": "response.content_part.added", "event_id": eid(),
                                  "response_id": resp, "item_id": out_item,
                                  "part": {"type": "output_audio", "transcript": ""}})
        deltas = rng.randint(40, 90)
        span = rng.uniform(1.0, 2.5)
        for k in range(deltas):
            td = tr + 0.002 + span * k / deltas
            ev(td, "server", {"type": "response.output_audio.delta", "event_id": eid(),
                              "response_id": resp, "item_id": out_item, "output_index": 0,
                              "content_index": 0, "delta": audio_ref(4800, next(ref))})
            if k % 2 == 0:
                ev(td + 0.0005, "server", {"type": "response.output_audio_transcript.delta",
                                           "event_id": eid(), "response_id": resp,
                                           "item_id": out_item, "delta": " word"})
        te = tr + span + 0.01
        ev(te - 0.005, "server", {"type": "conversation.item.input_audio_transcription"
                                          ".completed", "event_id": eid(), "item_id": item,
                                  "content_index": 0, "transcript": "What about tomorrow?"})
        for y in ("response.output_audio.done", "response.output_audio_transcript.done",
                  "response.content_part.done", "response.output_item.done"):
            ev(te, "server", {"type": y, "event_id": eid(), "response_id": resp,
                              "item_id": out_item})
        ev(te + 0.001, "server", {"type": "response.done", "event_id": eid(),
                                  "response": {"id": resp, "status": "completed",
                                               "usage": {"total_tokens": 321}}})
        # the classic mistakes, now and then
        if turn % 9 == 3:
            cid = eid()
            ev(te + 0.3, "client", {"type": "input_audio_buffer.commit", "event_id": cid},
               RealtimeError("input_audio_buffer_commit_empty", commit_empty_message(0),
                             source="client", event_id=cid,
                             hint="Server VAD already committed this audio."))
        if turn % 13 == 5:
            cid = eid()
            ev(te + 0.4, "client", {"type": "response.cancel", "event_id": cid})
            ev(te + 0.41, "server", {"type": "error", "event_id": eid(), "error": {
                "type": "invalid_request_error", "code": "response_cancel_not_active",
                "message": "Cancellation failed: no active response found", "param": None,
                "event_id": cid}})
        if turn % 17 == 8:
            cid = eid()
            ev(te + 0.5, "client", {"type": "session.update", "event_id": cid,
                                    "session": {"type": "realtime", "voice": "verse"}})
            ev(te + 0.51, "server", {"type": "error", "event_id": eid(), "error": {
                "type": "invalid_request_error", "code": "unknown_parameter",
                "message": "Unknown parameter: 'session.voice'.", "param": "session.voice",
                "event_id": cid}})
        t = end_appends
    out.sort(key=lambda r: r[0])
    for tt, d, event, refused in out[:n]:
        log.add(d, event, refused=refused, t=log.t0 + tt)
    return log
