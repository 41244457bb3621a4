"""Command line: ``python -m realtime_nb demo [--wav FILE] [--text TEXT] [--out DIR]``.

The demo runs one full spoken turn against the embedded local server with no browser: speech in
(a WAV/any audio file you give, or TEXT synthesized offline), server VAD ends the turn, the
transcripts are printed, the spoken reply is saved as a WAV and the event timeline as a PNG. It is
the quickest proof on a fresh machine that everything works.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtime_nb.audio import Audio

DEFAULT_TEXT = "Hello there. What is the weather like in Paris today?"


def _synthesize(text: str) -> Audio:
    from realtime_nb.audio import Audio
    from realtime_nb.server.engines.tts import EspeakSynthesizer

    pieces = list(EspeakSynthesizer().synthesize(text, voice="echo"))
    return Audio.concat(pieces) if len(pieces) > 1 else pieces[0]


async def demo(wav: str | None, text: str, out: Path, timeout: float) -> int:
    import numpy as np

    from realtime_nb import Session
    from realtime_nb.audio import Audio, decode
    from realtime_nb.widgets import timeline_png

    speech = decode(wav) if wav else _synthesize(text)
    speech = speech.resample(24_000)
    tail = Audio(np.zeros(24_000, dtype=np.int16), 24_000)  # 1 s of silence ends the turn
    t0 = time.perf_counter()
    async with Session(backend="local") as session:
        print(f"session: {session!r}")
        await session.update({"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
        print(f"sending {speech.duration_ms / 1000:.1f} s of speech"
              + (f" from {wav}" if wav else f' (synthesized: "{text}")'))
        await session.send_audio(Audio.concat([speech, tail]))
        done = await session.wait_for("response.done", timeout=timeout)
        with_transcript = any(
            e.type == "conversation.item.input_audio_transcription.completed"
            for e in session.events)
        if not with_transcript:
            await session.wait_for("conversation.item.input_audio_transcription.completed",
                                   timeout=timeout)
        elapsed = time.perf_counter() - t0
        response = done["response"]
        user = [i for i in session.items.values() if i.role == "user"]
        reply_items = [o["id"] for o in response["output"] if o.get("type") == "message"]
        for item in user:
            print(f"you said:      {session.transcripts.get(item.id, '')!r}")
        for item_id in reply_items:
            print(f"assistant:     {session.transcripts.get(item_id, '')!r}")
        print(f"response:      {response['status']}, usage {response['usage']['total_tokens']} "
              f"tokens, {elapsed:.1f} s from first audio sent")
        if reply_items:
            wav_path = out / "reply.wav"
            wav_path.write_bytes(session.item_audio(reply_items[0]).to_wav())
            print(f"reply audio:   {wav_path}")
        png = timeline_png(session.events, out / "timeline.png")
        print(f"timeline:      {png}")
        trace = session.events.to_jsonl(out / "events.jsonl")
        print(f"event log:     {trace}")
    return 0 if response["status"] == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime_nb")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="one spoken turn against the local server, no browser")
    d.add_argument("--wav", help="an audio file to send (any format realtime_nb.audio reads)")
    d.add_argument("--text", default=DEFAULT_TEXT, help="text to synthesize when no --wav")
    d.add_argument("--out", default="realtime_nb_demo", help="folder for reply.wav and "
                   "timeline.png (default ./realtime_nb_demo)")
    d.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        Path(args.out).mkdir(parents=True, exist_ok=True)
        return asyncio.run(demo(args.wav, args.text, Path(args.out), args.timeout))
    return 2


if __name__ == "__main__":
    sys.exit(main())
