"""The job runner: its one conversion between the responder's ``Reply`` and the core's, and the
unit it speaks a reply in.

The responder's :class:`realtime_nb.server.engines.Reply` (objects: ``FunctionCall``,
``McpCall``) is the public engine contract; the core's :class:`realtime_nb.protocol.Reply`
(tuples) is what :class:`~realtime_nb.protocol.SessionCore` takes, because ``protocol`` cannot
import ``server``. :func:`realtime_nb.server.jobs.to_core_reply` is where one becomes the other.
"""

from __future__ import annotations

from types import SimpleNamespace

from realtime_nb import Session
from realtime_nb.protocol import Reply as CoreReply
from realtime_nb.server import LocalServer
from realtime_nb.server.engines import (
    CallableResponder,
    Engines,
    EspeakSynthesizer,
    FunctionCall,
    McpCall,
    Reply,
    split_sentences,
)
from realtime_nb.server.jobs import to_core_reply


def test_function_and_mcp_calls_reach_the_core_as_tuples_each_kind_in_its_order() -> None:
    reply = Reply(text="Let me check.", truncated=True, function_calls=(
        FunctionCall("get_weather", '{"city": "Paris"}'),
        McpCall("calc", "add_numbers", '{"a": 2, "b": 40}'),
        FunctionCall("get_time"),
    ))
    assert to_core_reply(reply) == CoreReply(
        text="Let me check.", truncated=True,
        function_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", "{}")],
        mcp_calls=[("calc", "add_numbers", '{"a": 2, "b": 40}')])


def test_a_reply_like_object_missing_fields_reads_as_an_empty_reply() -> None:
    """Custom responders may return their own reply objects; absent attributes are empty."""
    assert to_core_reply(SimpleNamespace(text=None)) == CoreReply()


class _HeardSynthesizer(EspeakSynthesizer):
    """espeak-ng, keeping each text it is asked to speak."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def synthesize(self, text, **kwargs):  # type: ignore[override]
        self.texts.append(text)
        return super().synthesize(text, **kwargs)


async def test_a_reply_is_spoken_and_transcribed_in_the_synthesizers_sentences() -> None:
    """The runner speaks a reply in ``split_sentences`` pieces (one rule for the server and the
    synthesizers): "…" ends a sentence, and a sentence over 240 characters is cut after a comma,
    so its first audio does not wait for all of it. One transcript delta per piece."""
    long = ", ".join(["the lighthouse keeper climbed the stairs again"] * 8) + "."
    text = f"Well… let me think. {long} Done!"
    synth = _HeardSynthesizer()
    engines = Engines(synthesizer=synth,
                      responder=CallableResponder(lambda _request: text, takes="request"))
    async with LocalServer(port=0, engines=engines) as srv, Session(url=srv.url) as s:
        await s.update(turn_detection=None)
        mark = len(s.events)
        await s.say("Tell me a story.", timeout=60)
        deltas = [e.event["delta"] for e in s.events.entries[mark:]
                  if e.type == "response.output_audio_transcript.delta"]
    pieces = split_sentences(text)
    assert len(pieces) == 5 and pieces[:2] == ["Well…", "let me think."]
    assert all(len(p) <= 240 for p in pieces)
    assert synth.texts == pieces
    assert [d.strip() for d in deltas] == pieces
    assert "".join(deltas) == " ".join(pieces)
