"""Session against the real local server: the contract a notebook user relies on.

Speech comes from espeak-ng (the shared ``speech_pcm`` fixture: 24 kHz PCM16). The server runs
Silero VAD, so the VAD scenarios are the real thing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap
import threading

import pytest

from realtime_nb import RealtimeError, Session
from realtime_nb.client import EventLog, RealtimeTimeout
from realtime_nb.protocol import commit_empty_message
from realtime_nb.server import LocalServer

SILENCE_1S = b"\0\0" * 24000


@pytest.fixture(scope="module")
def engines():
    """One set of engines for the module: the ASR model loads once, not per test."""
    from realtime_nb.server.engines import Engines

    return Engines.default()


@pytest.fixture
async def server(engines):
    srv = LocalServer(port=0, engines=engines)
    await srv.start(warm_up=False)
    yield srv
    await srv.stop()


@pytest.fixture
async def session(server):
    async with Session(url=server.url) as s:
        yield s


async def manual(s: Session) -> None:
    await s.update(turn_detection=None)


async def test_connect_mirrors_the_servers_default_session(session) -> None:
    assert session.state == "connected"
    td = session.config["audio"]["input"]["turn_detection"]
    assert (td["type"], td["threshold"], td["prefix_padding_ms"],
            td["silence_duration_ms"]) == ("server_vad", 0.5, 300, 200)
    assert session.events[0].type == "session.created"
    assert session.mirror.session_id.startswith("sess_")


async def test_repr_names_backend_url_and_state(server) -> None:
    s = Session(url=server.url)
    assert "state='new'" in repr(s) and server.url in repr(s) and "backend='url'" in repr(s)
    async with s:
        assert "state='connected'" in repr(s)
    assert s.state == "closed" and "state='closed'" in repr(s)


async def test_update_returns_the_echo_and_the_mirror_follows(session) -> None:
    reply = await session.update(instructions="Be terse.", voice="marin")
    assert reply["type"] == "session.updated"
    assert session.config["instructions"] == "Be terse."
    assert session.config["audio"]["output"]["voice"] == "marin"
    assert session.user_config == {"type": "realtime", "instructions": "Be terse.",
                                   "audio": {"output": {"voice": "marin"}}}


async def test_update_refused_by_the_server_raises_its_error_and_keeps_the_config(session
                                                                                 ) -> None:
    before = session.config
    with pytest.raises(RealtimeError) as info:
        await session.update(model="gpt-realtime-mini")
    err = info.value
    assert err.source == "server" and err.param == "session.model"
    assert "reconnect" in err.hint
    assert session.config == before and "model" not in session.user_config


async def test_say_returns_the_finished_response_and_fills_the_mirror(session) -> None:
    rs = await session.say("What is the capital of France?", output_modalities=["text"])
    assert rs.status == "completed" and "capital of France" in rs.text
    roles = [i.role for i in session.items.list()]
    assert roles == ["user", "assistant"]
    assert session.usage["total_tokens"] == rs.usage["total_tokens"] > 0
    assert session.rate_limits["tokens"]["limit"] > 0
    assert session.active_response is None


async def test_seed_scenario_commit_after_vad_is_refused_then_forced(session, speech_pcm
                                                                    ) -> None:
    """Default session (server VAD): the VAD commits the turn itself, so a manual commit finds
    an empty buffer. Refused locally with the service's message and a hint naming the VAD
    auto-commit and the item; forced, the server's own error says the same."""
    mark = len(session.events)
    await session.send_audio(speech_pcm + SILENCE_1S)
    with pytest.raises(RealtimeError) as info:
        await session.commit()
    err = info.value
    assert err.code == "input_audio_buffer_commit_empty" and err.source == "client"
    assert err.message == commit_empty_message(0.0)
    commit = session.mirror.last_commit
    assert commit["by"] == "vad" and commit["item_id"] in session.items
    assert commit["item_id"] in err.hint and "Server VAD already committed" in err.hint
    assert f"{commit['audio_end_ms'] / 1000:.2f} s" in err.hint
    assert "turn_detection=None" in err.hint
    with pytest.raises(RealtimeError) as forced:
        await session.commit(force=True, wait=True)
    server_err = forced.value
    assert server_err.source == "server"
    assert (server_err.code, server_err.message) == (err.code, err.message)
    assert server_err.event_id == session.events.client()[-1].event["event_id"]
    await session.wait_for("response.done", timeout=60, since=mark)  # may be in already


async def test_vad_committed_item_keeps_the_users_recording(session, speech_pcm) -> None:
    # a silence window longer than the pause between the fixture's two sentences: one turn
    await session.update({"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "silence_duration_ms": 700}}}})
    mark = len(session.events)
    await session.send_audio(speech_pcm + SILENCE_1S)
    await session.wait_for("response.done", timeout=60, since=mark)
    commit = session.mirror.last_commit
    item = session.items[commit["item_id"]]
    audio = item.audio()
    assert audio.sample_rate == 24000
    speech_ms = len(speech_pcm) / 48
    assert speech_ms * 0.8 < audio.duration_ms < speech_ms + 600
    start = int(commit["start_ms"] * 48)
    assert item.audio_bytes == (speech_pcm + SILENCE_1S)[start:start + len(item.audio_bytes)]


async def test_commit_of_less_than_100ms_is_refused_with_the_services_numbers(session
                                                                            ) -> None:
    await manual(session)
    await session.append(b"\1\0" * 1200)  # 50 ms
    with pytest.raises(RealtimeError) as info:
        await session.commit()
    assert info.value.message == commit_empty_message(50.0)
    assert "Only 50.00 ms" in info.value.hint
    with pytest.raises(RealtimeError) as forced:
        await session.commit(force=True, wait=True)
    assert forced.value.source == "server" and forced.value.message == info.value.message


async def test_manual_turn_commits_exactly_what_was_appended(session, speech_pcm) -> None:
    await manual(session)
    await session.send_audio(speech_pcm)
    assert session.input_buffer_ms == pytest.approx(len(speech_pcm) / 48)
    reply = await session.commit(wait=True)
    item_id = reply["item_id"]
    assert session.input_buffer_ms == 0
    assert session.items[item_id].audio_bytes == speech_pcm
    await session.create_response()
    done = await session.wait_for("response.done", timeout=60)
    assistant = session.responses[done["response"]["id"]].output[0]
    assert assistant.audio() is not None and assistant.audio().duration_ms > 200
    assert assistant.transcript
    wav = assistant.audio_buffer().to_wav()
    assert wav[:4] == b"RIFF" and len(wav) > len(assistant.audio_bytes)


async def test_input_transcription_lands_on_the_item(server, speech_pcm) -> None:
    """Real ASR (faster-whisper tiny.en) on espeak speech."""
    async with Session(url=server.url) as s:
        await s.update(turn_detection=None, transcription={"model": "whisper-1"})
        await s.send_audio(speech_pcm)
        reply = await s.commit(wait=True)
        done = await s.wait_for(
            lambda e: e.get("type") == "conversation.item.input_audio_transcription.completed"
            and e.get("item_id") == reply["item_id"], timeout=90)
        assert "paris" in s.items[reply["item_id"]].transcript.lower()
        assert s.transcripts[reply["item_id"]] == done["transcript"]


async def test_second_response_while_one_is_active_raises_the_servers_error(engines) -> None:
    """The first response is held open (its responder waits until released), so the second
    ``response.create`` certainly meets it: the echo responder could finish first under load."""
    release = threading.Event()

    def held(text: str) -> str:
        release.wait(30)
        return "Done."

    srv = LocalServer(port=0, engines=dataclasses.replace(engines, responder=held))
    await srv.start(warm_up=False)
    try:
        async with Session(url=srv.url) as session:
            await session.create_item(text="Tell me something.")
            await session.create_response(wait=True)
            with pytest.raises(RealtimeError) as info:
                await session.create_response(wait=True)
            assert info.value.code == "conversation_already_has_active_response"
            assert not info.value.fatal and "response.done" in info.value.hint
            release.set()
            done = await session.wait_for("response.done", timeout=60)
            assert done["response"]["status"] == "completed"
    finally:
        release.set()
        await srv.stop()


async def test_cancel_without_active_response_is_a_benign_error(session) -> None:
    with pytest.raises(RealtimeError) as info:
        await session.cancel_response(wait=True)
    assert info.value.code == "response_cancel_not_active" and not info.value.fatal
    assert "truncate" in info.value.hint
    assert session.state == "connected"


async def test_truncate_and_delete_update_the_items(session) -> None:
    rs = await session.say("Say something.")
    item = rs.output[0]
    await session.truncate(item.id, 100, wait=True)
    assert session.items[item.id].truncated_ms == 100
    await session.delete_item(item.id, wait=True)
    assert item.id not in session.items


async def test_create_item_assigns_an_id_and_waits_for_it(session) -> None:
    reply = await session.create_item(text="hello", wait=True)
    item_id = reply["item"]["id"]
    assert item_id.startswith("item_") and session.items[item_id].text == "hello"


async def test_wait_for_times_out_with_realtime_timeout(session) -> None:
    with pytest.raises(RealtimeTimeout):
        await session.wait_for("response.done", timeout=0.2)
    assert session.state == "connected" and session._waiters == []


async def test_wait_for_is_cancel_safe(session) -> None:
    task = asyncio.ensure_future(session.wait_for("response.done", timeout=None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert session._waiters == []


async def test_callbacks_sync_async_wildcard_and_off(session) -> None:
    done: list[str] = []
    every: list[str] = []

    async def on_done_async(ev: dict) -> None:
        done.append("async:" + ev["response"]["id"])

    def boom(ev: dict) -> None:
        raise ValueError("callback bug")

    session.on("response.done", lambda ev: done.append(ev["response"]["id"]))
    session.on("response.done", on_done_async)
    session.on("*", lambda ev: every.append(ev["type"]))
    session.on("response.created", boom)
    rs = await session.say("hi", output_modalities=["text"])
    await asyncio.sleep(0.05)
    assert rs.id in done and f"async:{rs.id}" in done
    assert "response.created" in every and "response.done" in every
    assert isinstance(session.callback_errors[0], ValueError)
    session.off("*")
    n = len(every)
    await session.say("again", output_modalities=["text"])
    assert len(every) == n


async def test_event_log_keeps_client_and_server_events_with_audio_aside(session, speech_pcm
                                                                       ) -> None:
    await manual(session)
    await session.send_audio(speech_pcm[:48000], chunk_ms=100)
    appends = session.events.of_type("input_audio_buffer.append")
    assert len(appends) == 10 and all(e.direction == "client" for e in appends)
    assert appends[0].event["audio"] == f"<audio 4800 bytes #{appends[0].audio[0]}>"
    assert b"".join(session.events.audio_of(e) for e in appends) == speech_pcm[:48000]
    assert [e.seq for e in session.events] == list(range(len(session.events)))
    ts = [e.t for e in session.events]
    assert ts == sorted(ts)


async def test_jsonl_export_and_import_round_trip(session, tmp_path) -> None:
    await session.say("Say something.")
    path = session.events.to_jsonl(tmp_path / "trace.jsonl")
    log = EventLog.from_jsonl(path)
    assert [(e.direction, e.type, e.event) for e in log] == [
        (e.direction, e.type, e.event) for e in session.events]
    deltas = session.events.of_type("response.output_audio.delta")
    assert deltas and [log.audio_of(e) for e in log.of_type("response.output_audio.delta")] == [
        session.events.audio_of(e) for e in deltas]
    seen: list[str] = []
    assert await log.replay(lambda e: seen.append(e.type)) == len(log)
    assert seen == [e.type for e in session.events]


async def test_mirror_rebuilt_from_an_exported_trace_matches_the_live_one(session, speech_pcm,
                                                                          tmp_path) -> None:
    from realtime_nb.client import Mirror

    await manual(session)
    await session.send_audio(speech_pcm)
    await session.commit()
    await session.create_response()
    await session.wait_for("response.done", timeout=60)
    log = EventLog.from_jsonl(session.events.to_jsonl(tmp_path / "t.jsonl"))
    rebuilt = Mirror.from_log(log)
    assert list(rebuilt.items) == list(session.items)
    for item_id, item in session.items.items():
        assert rebuilt.items[item_id].audio_bytes == item.audio_bytes
        assert rebuilt.items[item_id].content_text == item.content_text
    assert rebuilt.usage == session.usage and rebuilt.config == session.config


def test_listening_for_a_beta_event_name_warns() -> None:
    from realtime_nb.client import RealtimeWarning

    s = Session(backend="local")
    with pytest.warns(RealtimeWarning, match="response.output_audio.delta"):
        s.on("response.audio.delta", print)


async def test_script_usage_with_asyncio_run(tmp_path) -> None:
    """Works from a plain script: asyncio.run, no notebook."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import asyncio
        from realtime_nb import Session
        from realtime_nb.server import LocalServer

        async def main():
            async with LocalServer(port=0) as srv, Session(url=srv.url) as s:
                rs = await s.say("ping", output_modalities=["text"])
                print("TEXT:", rs.text)

        asyncio.run(main())
    """))
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert "TEXT: " in out.decode() and "ping" in out.decode()


async def test_transcription_intent_opens_a_transcription_session(server) -> None:
    async with Session(url=server.url, intent="transcription") as s:
        assert s.config["type"] == "transcription"
        reply = await s.update(turn_detection=None)
        assert reply["session"]["type"] == "transcription"
        assert s.config["audio"]["input"]["turn_detection"] is None


async def test_update_before_connect_is_queued_and_applied_on_connect(server) -> None:
    s = Session(url=server.url)
    ev = await s.update(instructions="Queued first.")
    assert ev["type"] == "session.update" and s.pending == [ev]
    async with s:
        if s.config.get("instructions") != "Queued first.":
            await s.wait_for("session.updated", timeout=10)
        assert s.config["instructions"] == "Queued first."


async def test_backend_local_starts_the_embedded_server() -> None:
    from realtime_nb.server import ensure_local_server, stop_local_server

    try:
        async with Session(backend="local") as s:
            assert s.backend == "local" and s.state == "connected"
            assert s.url.startswith(ensure_local_server().url)
            rs = await s.say("hello", output_modalities=["text"])
            assert rs.status == "completed"
    finally:
        await asyncio.to_thread(stop_local_server)


async def test_switch_to_manual_then_immediate_audio_and_commit(session, speech_pcm) -> None:
    """No waiting for session.updated: the server applies the update before the audio that
    follows, so the mirror counts that audio as buffered and the commit goes through."""
    await session.update(turn_detection=None, wait=False)
    await session.send_audio(speech_pcm)
    assert session.input_buffer_ms == pytest.approx(len(speech_pcm) / 48)
    reply = await session.commit(wait=True)
    assert session.items[reply["item_id"]].audio_bytes == speech_pcm
