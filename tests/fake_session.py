"""A real Session against the scripted fake server, for the panel's and the turn rules' tests.

``fake``: a :class:`~realtime_nb.client.testing.FakeRealtimeServer` whose spoken answer is
three 600 ms sentences sent every 250 ms (slow enough to be interrupted) and whose
transcription of any user audio is "hello there". ``session``: a Session connected to the
module's ``fake`` (a test module may define its own ``fake`` and use this ``session``).
``sent``, ``appended_audio`` and ``until`` read what the server received and wait for it.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reliability_fixtures import until as until  # re-exported: the panel tests import it here

from realtime_nb import Session
from realtime_nb.client.testing import FakeRealtimeServer


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer(reply_text="First part. Second part. Third part.",
                                  reply_audio_ms=600, audio_interval=0.25,
                                  transcript="hello there") as server:
        yield server


@pytest.fixture
async def session(fake: FakeRealtimeServer) -> AsyncIterator[Session]:
    s = Session(url=fake.url)
    await s.connect()
    yield s
    await s.close()


def sent(fake: FakeRealtimeServer, etype: str) -> list[dict[str, Any]]:
    """The events of type ``etype`` the server received, in order."""
    return [e for e in fake.received if e["type"] == etype]


def appended_audio(fake: FakeRealtimeServer) -> bytes:
    """Everything the server received in input_audio_buffer.append, joined."""
    return b"".join(base64.b64decode(e["audio"]) for e in sent(fake, "input_audio_buffer.append"))


