"""MicWidget and PlayerWidget end to end: JupyterLab 4 and Notebook 7 in headless Chromium.

Chromium's fake microphone plays a spoken WAV in a loop; the kernel writes what the widgets
deliver to files, and the tests assert on those files: chunk sizes, timing, sequence numbers
and that the audio is the source speech (cross-correlation); for the player, that the played
milliseconds the browser reports advance with real time and that a stop returns an exact cut.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtime_nb.audio import Audio

from .conftest import (
    ARTIFACTS,
    JupyterPage,
    insecure_notebook,
    notebook_json,
    wait_for_text,
)

pytestmark = pytest.mark.browser

RATE = 24_000


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_rows(jp: JupyterPage, name: str, done: Any, timeout_s: float = 15) -> list[dict]:
    """Poll the kernel's JSON-lines file ``name`` until ``done(rows)`` holds."""
    deadline = jp.page.evaluate("() => performance.now()") + timeout_s * 1000
    while True:
        path = jp.out / name
        rows = _rows(path) if path.exists() else []
        if done(rows):
            return rows
        now = jp.page.evaluate("() => performance.now()")
        assert now < deadline, f"{name}: condition not met in {timeout_s} s; rows: {rows[-5:]}"
        jp.page.wait_for_timeout(100)


def _max_correlation(recorded: np.ndarray, source: np.ndarray) -> float:
    """Best normalized cross-correlation of ``recorded`` against the looped ``source``."""
    looped = np.tile(source, 3).astype(np.float64)
    seg = recorded.astype(np.float64)
    seg = seg - seg.mean()
    n = len(seg)
    size = 1 << int(np.ceil(np.log2(len(looped) + n)))
    corr = np.fft.irfft(np.fft.rfft(looped, size) * np.conj(np.fft.rfft(seg, size)), size)
    corr = corr[: len(looped) - n + 1]
    csum = np.concatenate([[0.0], np.cumsum(looped**2)])
    energy = csum[n:] - csum[:-n]
    csum1 = np.concatenate([[0.0], np.cumsum(looped)])
    mean = (csum1[n:] - csum1[:-n]) / n
    energy = energy - n * mean**2  # window energy around its mean (seg has mean 0)
    norm = np.sqrt(np.maximum(energy, 1e-9) * float(np.dot(seg, seg)))
    return float(np.max(corr / norm))


def _speech_correlation(pcm: np.ndarray, source: np.ndarray) -> float:
    """Median correlation with the source over the recording's voiced half-second windows.

    The median, not the worst window: under CPU load Chromium's capture itself may insert a
    10 ms buffer now and then (measured here: the alignment jumps by exactly 240 samples),
    which spoils only the window around it.
    """
    n = RATE // 2
    scores = []
    for i in range(0, len(pcm) - n + 1, n):
        seg = pcm[i:i + n]
        if Audio(seg.astype(np.int16), RATE).rms_dbfs > -40:
            scores.append(_max_correlation(seg, source))
    assert scores, "no voiced half-second in the recording"
    return float(np.median(scores))


def _source_24k(fake_mic_wav: Path) -> np.ndarray:
    return Audio.from_wav(fake_mic_wav.read_bytes()).resample(RATE).samples


def _record(jp: JupyterPage, take: int, seconds: float, setup: str = "",
            probe: Any = None) -> tuple[list, float]:
    """Record ``seconds`` started from the kernel; return the chunk rows and the start time.

    ``probe()`` is called while still recording, after the last chunk needed arrived.
    """
    t0 = float(jp.execute(f"{setup}\nprint(time.monotonic())\nmic.recording = True"))
    _wait_rows(jp, f"mic_take{take}.jsonl", lambda r: len(r) >= seconds * 10)
    if probe is not None:
        probe()
    jp.execute("mic.recording = False")
    rows = _wait_rows(jp, f"mic_take{take}.jsonl", lambda r: bool(r) and r[-1]["final"],
                      timeout_s=5)
    return rows, t0


def _stats(jp: JupyterPage) -> dict[str, Any]:
    out = jp.execute("import dataclasses; print(json.dumps("
                     "{**dataclasses.asdict(mic.stats), 'lost': mic.stats.lost}))")
    return json.loads(out)


# ---------------------------------------------------------------------------------- MicWidget
def test_mic_streams_contiguous_100ms_chunks_of_the_source_speech(
    jupyter: JupyterPage, fake_mic_wav: Path
) -> None:
    """Recording started from the kernel delivers >= 20 gap-free 100 ms chunks of the speech."""
    seen: dict[str, float] = {}

    def probe() -> None:
        seen["level"] = float(jupyter.execute("print(mic.level)"))
        seen["meter"] = jupyter.page.evaluate(
            "() => parseFloat(document.querySelector('.rtnb-mic-meter-bar').style.width)")

    rows, t0 = _record(jupyter, take=1, seconds=2.5, probe=probe)
    jupyter.wait_for_kernel("print(mic.stats.chunks_sent is not None)", "True")
    stats = _stats(jupyter)
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(len(rows))), f"sequence numbers not contiguous: {seqs}"
    assert len(rows) >= 20
    assert all(r["samples"] == 2400 and r["rate"] == RATE for r in rows[:-1])
    assert rows[-1]["final"] and 0 < rows[-1]["samples"] <= 2400
    assert stats["lost"] == 0 and stats["chunks_sent"] == len(rows), stats
    gaps = np.diff([r["at"] for r in rows[:-1]])
    median = float(np.median(gaps))
    assert 0.085 <= median <= 0.115, f"median chunk interval {median:.3f} s"
    first_chunk_s = rows[0]["at"] - t0
    print(f"\n[{jupyter.app}] chunks={len(rows)} interval median={median * 1000:.1f} ms "
          f"p10={np.percentile(gaps, 10) * 1000:.1f} p90={np.percentile(gaps, 90) * 1000:.1f} "
          f"startup={stats['startup_ms']:.0f} ms first-chunk~{first_chunk_s * 1000:.0f} ms "
          f"ctx={stats['context_rate']} resampler={stats['resampler']}")
    pcm = np.frombuffer((jupyter.out / "mic_take1.pcm").read_bytes(), dtype="<i2")
    audio = Audio(pcm.astype(np.int16), RATE)
    assert audio.rms_dbfs > -40, f"recorded audio is near silence ({audio.rms_dbfs:.1f} dBFS)"
    corr = _speech_correlation(pcm, _source_24k(fake_mic_wav))
    print(f"[{jupyter.app}] level={audio.rms_dbfs:.1f} dBFS correlation={corr:.3f}")
    assert corr > 0.8, f"recorded audio does not match the source speech (corr {corr:.2f})"
    assert seen["level"] > -40 and seen["meter"] > 0, seen


def test_muted_mic_keeps_streaming_silence_with_the_real_level(jupyter: JupyterPage) -> None:
    """While the kernel sets ``muted`` (assistant speaking), chunks carry zeros, flagged muted."""
    rows, _ = _record(jupyter, take=2, seconds=1.0, setup="mic.muted = True")
    jupyter.execute("mic.muted = False")
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert all(r["muted"] for r in rows)
    pcm = np.frombuffer((jupyter.out / "mic_take2.pcm").read_bytes(), dtype="<i2")
    assert len(pcm) >= 10 * 2400 and not pcm.any()
    assert max(r["level"] for r in rows) > -40


def test_mic_button_click_starts_and_stops_a_take(jupyter: JupyterPage) -> None:
    """In hands-free mode one click starts the microphone and the next one stops it."""
    page = jupyter.page
    page.click(".rtnb-mic-button")
    _wait_rows(jupyter, "mic_take3.jsonl", lambda r: len(r) >= 8)
    assert page.inner_text(".rtnb-mic-button").strip() == "■ Stop"
    page.click(".rtnb-mic-button")
    rows = _wait_rows(jupyter, "mic_take3.jsonl", lambda r: bool(r) and r[-1]["final"])
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    jupyter.wait_for_kernel("print(mic.recording, mic.status)", "False idle")


def test_push_to_talk_records_while_the_space_bar_is_held(jupyter: JupyterPage) -> None:
    """Holding space on the focused widget records; releasing it ends the take at once."""
    page = jupyter.page
    jupyter.execute("mic.mode = 'push-to-talk'")
    page.wait_for_function(
        "() => document.querySelector('.rtnb-mic-button').textContent === 'Hold to talk'")
    page.focus(".rtnb-mic")
    page.keyboard.down("Space")
    page.wait_for_timeout(1500)
    page.keyboard.up("Space")
    rows = _wait_rows(jupyter, "mic_take4.jsonl", lambda r: bool(r) and r[-1]["final"])
    total_ms = sum(r["samples"] for r in rows) / RATE * 1000
    assert 900 <= total_ms <= 1600, f"{total_ms:.0f} ms recorded for a 1.5 s press"
    jupyter.wait_for_kernel("print(mic.recording)", "False")
    jupyter.execute("mic.mode = 'hands-free'")


def test_worklet_resampler_delivers_the_same_speech(
    jupyter: JupyterPage, fake_mic_wav: Path
) -> None:
    """The fallback path (device-rate AudioContext, resampled in the worklet) is as faithful."""
    rows, _ = _record(jupyter, take=5, seconds=1.5, setup="mic._worklet_resample = True")
    jupyter.execute("mic._worklet_resample = False")
    stats = _stats(jupyter)
    assert stats["resampler"] == "worklet" and stats["context_rate"] != RATE, stats
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert all(r["samples"] == 2400 for r in rows[:-1])
    pcm = np.frombuffer((jupyter.out / "mic_take5.pcm").read_bytes(), dtype="<i2")
    corr = _speech_correlation(pcm, _source_24k(fake_mic_wav))
    print(f"\n[{jupyter.app}] worklet resampler from {stats['context_rate']} Hz: corr={corr:.3f}")
    assert corr > 0.8


@pytest.mark.parametrize(
    ("error_name", "advice"),
    [("NotAllowedError", "site settings"), ("NotFoundError", "Plug in a microphone")],
)
def test_mic_explains_a_refused_or_missing_microphone(
    jupyter: JupyterPage, error_name: str, advice: str
) -> None:
    """getUserMedia failing with ``error_name`` shows what to do, in the page and in ``error``."""
    page = jupyter.page
    (jupyter.out / "mic_error.txt").unlink(missing_ok=True)
    page.evaluate(
        """(name) => {
            const md = navigator.mediaDevices;
            md.getUserMedia = () => Promise.reject(new DOMException("test refusal", name));
        }""",
        error_name,
    )
    try:
        jupyter.execute("mic.recording = True")
        wait_for_text(page, jupyter.out / "mic_error.txt", advice)
        page.wait_for_selector(f".rtnb-mic-error:has-text('{advice}')", timeout=5_000)
        state = jupyter.execute("print(mic.recording, mic.status)").split()
        assert state == ["False", "error"]
    finally:
        page.evaluate("() => { delete navigator.mediaDevices.getUserMedia; }")
    jupyter.execute("mic.error = ''; mic.status = 'idle'")


def test_mic_explains_an_insecure_page(jupyter: JupyterPage) -> None:
    """Served under a plain-http host name, the widget says to use https or localhost."""
    name = "insecure.ipynb"
    error_file = jupyter.out / "insecure_error.txt"
    cells = [
        "import pathlib\nfrom realtime_nb.widgets import MicWidget\n"
        "m = MicWidget()\n"
        f"m.observe(lambda ch: pathlib.Path({str(error_file)!r}).write_text(ch['new']), "
        "names='error')\nm.recording = True\nm"
    ]
    (jupyter.root / name).write_text(json.dumps(notebook_json(cells)))
    with insecure_notebook(jupyter.page.context, jupyter.base_url, jupyter.root, name,
                           app=jupyter.app) as insecure:
        page = insecure.page
        page.wait_for_selector(".rtnb-mic-error:has-text('secure page')", timeout=30_000)
        text = page.inner_text(".rtnb-mic-error")
        assert "https" in text and "localhost" in text, text
        wait_for_text(page, error_file, "secure page")  # the error trait reached the kernel
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"widgets-insecure-{jupyter.app}.png"))


# ------------------------------------------------------------------------------- PlayerWidget
TONE = """
import numpy as np
_t = np.arange(int(24000 * {seconds})) / 24000
_pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440 * _t)).astype('<i2').tobytes()
for _i in range(0, len(_pcm), 4800):
    player.play_chunk({item!r}, _pcm[_i:_i + 4800])
"""


def test_player_reports_played_ms_up_to_the_full_item(jupyter: JupyterPage) -> None:
    """2 s of audio: played_ms grows in real time at >= 5 reports/s and ends at 2000 ms."""
    jupyter.execute(TONE.format(seconds=2.0, item="tone-full"))
    rows = _wait_rows(jupyter, "player.jsonl",
                      lambda r: any(x["item"] == "tone-full" and x["event"] == "drained"
                                    for x in r), timeout_s=10)
    mine = [r for r in rows if r["item"] == "tone-full"]
    progress = [r for r in mine if r["event"] == "progress"]
    end = next(r for r in mine if r["event"] == "drained")
    start = next(r for r in mine if r["event"] == "started")
    assert end["ms"] == 2000
    assert all(b["ms"] >= a["ms"] for a, b in itertools.pairwise(progress))
    wall = end["at"] - start["at"]
    rate = len(progress) / wall
    print(f"\n[{jupyter.app}] player: 2000 ms played in {wall * 1000:.0f} ms wall, "
          f"{rate:.1f} reports/s")
    assert 1.7 <= wall <= 2.4, f"2 s of audio took {wall:.2f} s"
    assert rate >= 5
    assert jupyter.execute("print(player.played_ms_of('tone-full'), player.playing)").split() == [
        "2000", "False"]


def test_player_stop_mid_way_returns_the_played_ms_of_the_cut(jupyter: JupyterPage) -> None:
    """stop() after ~1 s answers with the exact cut, between 0 and 2000 ms, near the wall time."""
    jupyter.execute(TONE.format(seconds=2.0, item="tone-cut"))
    rows = _wait_rows(jupyter, "player.jsonl",
                      lambda r: any(x["item"] == "tone-cut" and x["event"] == "started"
                                    for x in r))
    started = next(r for r in rows if r["item"] == "tone-cut" and r["event"] == "started")
    jupyter.page.wait_for_timeout(1000)
    jupyter.execute(
        "_f = player.stop(lambda p: (OUT / 'stop.json').write_text(json.dumps("
        "{'item': p.item_id, 'ms': p.played_ms, 'dropped': p.dropped_ms, "
        "'at': time.monotonic()})))")
    result = json.loads(jupyter.wait_for_file("stop.json").read_text())
    wall_ms = (result["at"] - started["at"]) * 1000
    print(f"\n[{jupyter.app}] stop: played_ms={result['ms']} dropped={result['dropped']} "
          f"wall since start={wall_ms:.0f} ms")
    assert result["item"] == "tone-cut"
    assert 0 < result["ms"] < 2000
    assert result["ms"] + result["dropped"] == 2000
    assert abs(result["ms"] - wall_ms) < 350
    assert jupyter.execute(
        "print(player.play_chunk('tone-cut', b'\\x00\\x00' * 2400), player.playing)"
    ).split() == ["False", "False"]


def test_no_console_errors_from_the_widgets(jupyter: JupyterPage) -> None:
    """Everything above ran without errors in the browser console (known Jupyter noise aside).

    A probe error is logged first to prove that console errors are collected at all.
    """
    jupyter.page.evaluate("() => console.error('realtime_nb console probe')")
    jupyter.page.wait_for_timeout(100)
    errors = jupyter.our_console_errors()
    assert "console.error: realtime_nb console probe" in errors
    assert [e for e in errors if "console probe" not in e] == []
