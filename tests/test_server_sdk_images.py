"""Image input through the official ``openai`` SDK pointed at the local server.

The SDK sends a user message with an ``input_image`` part (its own GA types); every event the
server answers with must validate against the SDK's types; the echo responder acknowledges the
picture by size and format, and ``response.done`` reports image tokens inside the input tokens.
A bad image gets an ``error`` event the SDK parses, and the conversation is unchanged.
"""

from __future__ import annotations

import pytest
from image_fixtures import image_url
from openai.types.realtime import RealtimeConversationItemUserMessage
from test_server_sdk import client_for, collect

from realtime_nb.protocol.images import image_tokens
from realtime_nb.server import LocalServer


@pytest.fixture
async def server():
    async with LocalServer() as srv:
        yield srv


async def test_sdk_image_item_is_acknowledged_with_image_tokens(server) -> None:
    url = image_url(640, 480, "JPEG")
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        item = RealtimeConversationItemUserMessage(
            type="message", role="user",
            content=[{"type": "input_text", "text": "What is in this picture?"},
                     {"type": "input_image", "image_url": url, "detail": "high"}])
        await conn.conversation.item.create(item=item)
        added = await collect(conn, "conversation.item.done")
        part = added[-1]["item"]["content"][1]
        assert (part["type"], part["detail"]) == ("input_image", "high")
        await conn.response.create(response={"output_modalities": ["text"]})
        events = await collect(conn, "response.done")
    done = events[-1]["response"]
    assert done["status"] == "completed"
    text = done["output"][0]["content"][0]["text"]
    assert text == 'You sent a 640×480 JPEG image. You said: "What is in this picture?".'
    details = done["usage"]["input_token_details"]
    assert details["image_tokens"] == image_tokens(640, 480, "high") == 425
    assert done["usage"]["input_tokens"] == details["text_tokens"] + 425


async def test_sdk_bad_image_gets_an_error_event_and_no_item(server) -> None:
    async with client_for(server).realtime.connect(model="gpt-realtime") as conn:
        await collect(conn, "session.created")
        await conn.conversation.item.create(
            event_id="evt_bad_image",
            item={"type": "message", "role": "user",
                  "content": [{"type": "input_image",
                               "image_url": "data:image/png;base64,bm90IGFuIGltYWdl"}]})
        (error,) = await collect(conn, "error")
        assert error["error"]["code"] == "invalid_value"
        assert error["error"]["param"] == "item.content[0].image_url"
        assert error["error"]["event_id"] == "evt_bad_image"
        await conn.response.create(response={"output_modalities": ["text"]})
        events = await collect(conn, "response.done")
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == (
        "I did not catch that. Could you say it again?")
