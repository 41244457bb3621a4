"""Socket replays against the real local server: the offline sweep must predict them exactly.

Each setting gets a fresh WebSocket session; the local server runs the same segmentation live,
chunk by chunk (and batches VAD across sessions), so turn times must agree to the millisecond.
"""

from __future__ import annotations

import pytest
from lab_fixtures import LabSpeech, lab_server, lab_speech  # noqa: F401

from realtime_nb import RealtimeError, Session, lab
from realtime_nb.server import LocalServer
from realtime_nb.vad import SemanticVadSettings, ServerVadSettings

# Chosen to exercise every rule: the floor after a commit (prefix 300 right after a cut),
# no padding, a high threshold (hysteresis), a long window, and semantic_vad.
SETTINGS = [
    ServerVadSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=200),
    ServerVadSettings(threshold=0.8, prefix_padding_ms=0, silence_duration_ms=200),
    ServerVadSettings(threshold=0.3, prefix_padding_ms=500, silence_duration_ms=700),
    SemanticVadSettings(eagerness="high"),
]


@pytest.fixture(scope="module")
def offline(lab_speech: LabSpeech) -> lab.SweepResult:  # noqa: F811
    return lab.sweep(lab_speech.noisy, grid=SETTINGS, progress=False)


def test_offline_and_socket_turns_agree_exactly(
    offline: lab.SweepResult, lab_speech: LabSpeech  # noqa: F811
) -> None:
    """backend="local" with its private server gives the offline turns, to the millisecond."""
    socket = lab.sweep(lab_speech.noisy, grid=SETTINGS, backend="local", progress=False)
    assert socket.backend == "local"
    assert offline.differences(socket) == []
    assert [r.turns for r in socket] == [r.turns for r in offline]
    assert all(r.n_turns >= 2 for r in socket)
    cut = socket[0]  # 200 ms at threshold 0.5 splits the first phrase: the floor rule applies
    assert cut.premature_cutoffs >= 1
    for r_off, r_sock in zip(offline, socket, strict=True):
        assert [t.committed_at_ms for t in r_sock.segments] == [
            t.committed_at_ms for t in r_off.segments]
        assert all(t.item_id for t in r_sock.segments)
        assert r_sock.to_dict()["premature_cutoffs"] == r_off.premature_cutoffs


async def test_sweep_against_a_server_on_the_calling_loop(
    offline: lab.SweepResult, lab_speech: LabSpeech  # noqa: F811
) -> None:
    """url= of a server running on this very loop works through asweep (no deadlock)."""
    async with LocalServer() as server:
        socket = await lab.asweep(lab_speech.noisy, grid=SETTINGS[:2], backend="local",
                                  url=server.url, progress=False, concurrency=2)
    assert [r.turns for r in socket] == [r.turns for r in offline[:2]]


def test_real_time_pacing_measures_arrival_times(
    lab_server: str, lab_speech: LabSpeech  # noqa: F811
) -> None:
    """Paced at real time, event arrival times land on the audio timeline near the offline
    times (the local server answers within a chunk or two)."""
    short = lab_speech.clean.slice_ms(0, 4200)  # phrase A and a little silence
    setting = [ServerVadSettings(silence_duration_ms=500)]
    offline = lab.sweep(short, grid=setting, progress=False, tail_ms=1000)
    paced = lab.sweep(short, grid=setting, backend="local", url=lab_server, realtime=True,
                      progress=False, tail_ms=1000)
    assert paced[0].turns == offline[0].turns
    for want, got in zip(offline[0].segments, paced[0].segments, strict=True):
        assert got.started_at_ms is not None and got.committed_at_ms is not None
        # never before the audio happened; soon after it (generous: the machine is shared)
        assert want.started_at_ms - 50 <= got.started_at_ms <= want.started_at_ms + 1000
        assert want.committed_at_ms - 50 <= got.committed_at_ms <= want.committed_at_ms + 1000
        assert got.stopped_at_ms <= got.committed_at_ms


async def test_apply_sends_the_recommended_turn_detection(
    lab_server: str, offline: lab.SweepResult  # noqa: F811
) -> None:
    best = offline.recommend()
    async with Session(url=lab_server) as session:
        await session.update(turn_detection={"type": "server_vad", "create_response": False,
                                             "interrupt_response": False})
        updated = await lab.apply(session, best)
        td = updated["session"]["audio"]["input"]["turn_detection"]
        assert {k: td[k] for k in best.turn_detection} == best.turn_detection
        # the session's own response flags survive
        assert td["create_response"] is False
        assert td["interrupt_response"] is False
        updated = await lab.apply(session, {"type": "semantic_vad", "eagerness": "low"})
        td = updated["session"]["audio"]["input"]["turn_detection"]
        assert (td["type"], td["eagerness"], td["create_response"]) == (
            "semantic_vad", "low", False)


def test_openai_backend_without_a_key_fails_before_any_work(
    lab_speech: LabSpeech, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RealtimeError) as info:
        lab.sweep(lab_speech.clean, grid=SETTINGS[:1], backend="openai", progress=False)
    assert info.value.code == "missing_api_key"
