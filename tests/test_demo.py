"""``python -m realtime_nb demo``: one spoken turn against the local server, no browser."""

from __future__ import annotations

import wave

from realtime_nb.__main__ import main


def test_demo_runs_a_full_spoken_turn_and_saves_its_outputs(tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["demo", "--out", str(out_dir), "--text", "What time is it in Tokyo?"]) == 0
    out = capsys.readouterr().out
    assert "tokyo" in out.lower()  # the user's transcript and the echoed reply are printed
    with wave.open(str(out_dir / "reply.wav")) as w:
        assert w.getframerate() == 24000 and w.getnframes() > 24000
    assert (out_dir / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out_dir / "events.jsonl").stat().st_size > 0
