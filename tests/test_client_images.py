"""Pictures from the kernel: ``Session.send_image`` / ``create_item(image=)`` and the mirror.

Pins down what ``prepare_image`` takes (path, PNG/JPEG bytes kept byte for byte, other formats
re-encoded, PIL images, numpy arrays), that very large pictures are downsized with an
ImageWarning, that non-images are refused locally with ``invalid_image`` (nothing sent), that a
bad data URL in a hand-made item is refused locally as the server would, that the mirror keeps
the picture of a user item once (the server's echo shares the string the client sent) and
decodes it, and that a responder on the local server receives the picture a Session sent
(through ``response.create`` with inline ``response.input`` too).
"""

from __future__ import annotations

import asyncio
import io
import warnings

import numpy as np
import pytest
from image_fixtures import image_bytes, image_message, image_url
from PIL import Image

from realtime_nb import RealtimeError, Session
from realtime_nb.client import EventLog
from realtime_nb.client.errors import ImageWarning
from realtime_nb.client.images import prepare_image
from realtime_nb.client.mirror import ItemState, Mirror
from realtime_nb.client.renew import RenewPolicy, plan_carry
from realtime_nb.protocol.images import decode_image_url
from realtime_nb.server import LocalServer
from realtime_nb.server.engines import CallableResponder, Engines


# ------------------------------------------------------------------ prepare_image
def test_png_and_jpeg_bytes_are_sent_byte_for_byte() -> None:
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        raw = image_bytes(64, 40, fmt)
        prepared = prepare_image(raw)
        assert (prepared.data, prepared.mime_type, prepared.width, prepared.height,
                prepared.note) == (raw, mime, 64, 40, "")


def test_a_path_is_read(tmp_path) -> None:
    path = tmp_path / "pic.jpg"
    path.write_bytes(image_bytes(30, 20, "JPEG"))
    assert (prepare_image(path).width, prepare_image(str(path)).mime_type) == (30, "image/jpeg")


def test_other_formats_are_re_encoded_as_png_with_a_note() -> None:
    prepared = prepare_image(image_bytes(33, 22, "GIF", color=1, mode="P"))
    assert (prepared.mime_type, prepared.width, prepared.height) == ("image/png", 33, 22)
    assert prepared.note == "re-encoded from GIF"
    decode_image_url(prepared.part()["image_url"])  # what the server will accept


@pytest.mark.parametrize(("shape", "mode"), [((20, 30), "L"), ((20, 30, 3), "RGB"),
                                             ((20, 30, 4), "RGBA")])
def test_numpy_arrays_become_png_of_their_size(shape: tuple[int, ...], mode: str) -> None:
    arr = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    prepared = prepare_image(arr)
    assert (prepared.mime_type, prepared.width, prepared.height) == ("image/png", 30, 20)
    back = Image.open(io.BytesIO(prepared.data))
    assert back.mode == mode and np.array_equal(np.asarray(back), arr)


def test_pil_image_is_encoded() -> None:
    prepared = prepare_image(Image.new("RGB", (50, 10), (0, 128, 255)))
    assert (prepared.mime_type, prepared.width, prepared.height) == ("image/png", 50, 10)


def test_large_noisy_picture_is_downsized_and_sent_as_jpeg() -> None:
    """Past max_side it is downsized; a PNG of photo-like noise would be too big: JPEG."""
    arr = np.random.default_rng(1).integers(0, 255, (1500, 3000, 3), dtype=np.uint8)
    prepared = prepare_image(arr)
    assert (prepared.width, prepared.height, prepared.mime_type) == (2048, 1024, "image/jpeg")
    assert prepared.note == "downsized from 3000×1500 to 2048×1024 (max_side=2048)"


def test_a_large_jpeg_is_downsized_and_stays_a_jpeg() -> None:
    prepared = prepare_image(image_bytes(4200, 2100, "JPEG"))
    assert (prepared.width, prepared.height, prepared.mime_type) == (2048, 1024, "image/jpeg")
    assert decode_image_url(prepared.part()["image_url"]).size == (2048, 1024)


@pytest.mark.parametrize("bad", [b"", b"hello, not a picture", np.zeros((4, 4), np.float32),
                                 np.zeros((4, 4, 2), np.uint8), 3.5, "/no/such/picture.png"])
def test_non_images_are_refused_with_invalid_image(bad) -> None:
    with pytest.raises(RealtimeError) as info:
        prepare_image(bad)
    assert (info.value.code, info.value.source, info.value.param) == (
        "invalid_image", "client", "image")
    assert info.value.hint


# ------------------------------------------------------------------ the mirror
def test_mirror_shares_the_echoed_image_string_with_the_one_sent() -> None:
    mirror = Mirror()
    sent = image_url(40, 30)
    mirror.client_event({"type": "conversation.item.create",
                         "item": image_message(sent, "hi", item_id="item_1")})
    echo = image_message("" + sent[:10] + sent[10:], "hi", item_id="item_1")  # equal, not same
    assert echo["content"][1]["image_url"] is not sent
    mirror.server_event({"type": "conversation.item.added", "previous_item_id": None,
                         "item": echo})
    it = mirror.items.get("item_1")
    assert it.image_urls[0] is sent
    assert echo["content"][1]["image_url"] is sent  # the logged event shares it too
    assert [img.describe() for img in it.images] == ["40×30 PNG"]


def test_mirror_fills_in_an_image_the_server_did_not_echo() -> None:
    mirror = Mirror()
    sent = image_url(8, 8)
    mirror.client_event({"type": "conversation.item.create",
                         "item": image_message(sent, item_id="item_1")})
    echo = {"type": "message", "role": "user", "id": "item_1",
            "content": [{"type": "input_image", "image_url": None}]}
    mirror.server_event({"type": "conversation.item.added", "previous_item_id": None,
                         "item": echo})
    assert mirror.items.get("item_1").image_urls == [sent]
    assert echo["content"][0]["image_url"] is None  # what the server sent stays as it was


def test_thumbnail_is_a_small_jpeg_made_once() -> None:
    mirror = Mirror()
    mirror.server_event({"type": "conversation.item.added", "previous_item_id": None,
                         "item": image_message(image_url(640, 480), item_id="item_1")})
    it = mirror.items.get("item_1")
    thumb = it.thumbnail()
    assert thumb is it.thumbnail()
    img = decode_image_url(thumb)
    assert (img.mime_type, img.width, img.height) == ("image/jpeg", 96, 72)


def test_renewal_carries_the_pictures_of_user_messages() -> None:
    """An image-only message is carried too (not dropped for "no text"); a picture counts
    four characters per approximate image token against max_chars."""
    url = image_url(64, 48)

    def item(i: str, text: str) -> ItemState:
        return ItemState(i, type="message", role="user", status="completed", text=text,
                         in_conversation=True, item=image_message(url, text or None, "low", i))

    plan = plan_carry([item("a", "look"), item("b", "")], RenewPolicy(max_chars=None))
    assert [it["content"] for it in plan.items] == [
        [{"type": "input_text", "text": "look"},
         {"type": "input_image", "image_url": url, "detail": "low"}],
        [{"type": "input_image", "image_url": url, "detail": "low"}]]
    assert plan.items[1]["content"][0]["image_url"] is url  # shared, not copied
    # 85 tokens -> 340 characters: only the newest item fits in 400
    assert plan_carry([item("a", "look"), item("b", "")],
                      RenewPolicy(max_chars=400)).carried == ["b"]


# ------------------------------------------------------------------ against the local server
@pytest.fixture
async def seen_server():
    """A local server whose responder reports the pictures it sees (and records them)."""
    seen: list = []

    def respond(request) -> str:
        seen.append(request.images)
        latest = request.latest_images
        return "; ".join(f"{i.width}x{i.height} {i.mime_type}" for i in latest) or "none"

    engines = Engines(responder=CallableResponder(respond, takes="request"))
    srv = LocalServer(port=0, engines=engines)
    await srv.start(warm_up=False)
    srv.seen = seen
    yield srv
    await srv.stop()


async def test_send_image_reaches_the_responder_with_its_size(seen_server, tmp_path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(320, 240, "JPEG"))
    async with Session(url=seen_server.url, record=False) as s:
        await s.update(turn_detection=None)
        ev = await s.send_image(path, text="what is it?", detail="low", respond=True,
                                output_modalities=["text"])
        done = await s.wait_for("response.done", timeout=30)
        item = s.items.get(ev["item"]["id"])
    assert done["response"]["output"][0]["content"][0]["text"] == "320x240 image/jpeg"
    assert [p["type"] for p in ev["item"]["content"]] == ["input_text", "input_image"]
    assert item.text == "what is it?"
    assert item.images[0].data == path.read_bytes()
    assert seen_server.seen[-1][0].detail == "low"
    assert done["response"]["usage"]["input_token_details"]["image_tokens"] == 85


async def test_a_picture_is_held_once_by_the_log_and_the_mirror(seen_server) -> None:
    """The event sent, the server's two echoes in the log and the mirror's item all hold the
    very same data URL string (a picture of megabytes is not kept three times)."""
    async with Session(url=seen_server.url, record=False) as s:
        ev = await s.send_image(image_bytes(300, 200, "PNG"))
        await s.wait_for(lambda e: e.get("type") == "conversation.item.done"
                         and e["item"]["id"] == ev["item"]["id"], timeout=10)
        sent = ev["item"]["content"][0]["image_url"]
        echoes = [e.event["item"]["content"][0]["image_url"] for e in s.events.server()
                  if e.type in ("conversation.item.added", "conversation.item.done")]
        assert len(echoes) == 2 and all(url is sent for url in echoes)
        assert s.items[ev["item"]["id"]].image_urls[0] is sent


async def test_pictures_survive_an_exported_trace_and_the_flight_recorder(
        seen_server, tmp_path) -> None:
    png = image_bytes(120, 80, "PNG")
    async with Session(url=seen_server.url, record=tmp_path / "rec") as s:
        ev = await s.send_image(png, text="keep me", wait=True)
        await asyncio.sleep(0.2)
        s.events.to_jsonl(tmp_path / "trace.jsonl")
        folder = s.recording_folder
    item_id = ev["item"]["id"]
    for log in (EventLog.from_jsonl(tmp_path / "trace.jsonl"), EventLog.from_folder(folder)):
        item = Mirror.from_log(log).items[item_id]
        assert item.text == "keep me" and item.images[0].data == png


async def test_image_inline_in_response_input_reaches_the_responder(seen_server) -> None:
    async with Session(url=seen_server.url, record=False) as s:
        await s.update(turn_detection=None)
        await s.create_response(conversation="none", output_modalities=["text"],
                                input=[image_message(image_url(12, 34, "PNG"))])
        done = await s.wait_for("response.done", timeout=30)
    assert done["response"]["output"][0]["content"][0]["text"] == "12x34 image/png"


async def test_downsizing_warns(seen_server) -> None:
    big = np.zeros((100, 5000, 3), np.uint8)
    async with Session(url=seen_server.url, record=False) as s:
        with pytest.warns(ImageWarning, match="downsized from 5000×100 to 2048×41"):
            await s.send_image(big, wait=True)


async def test_non_image_is_refused_locally_and_nothing_is_sent(seen_server) -> None:
    async with Session(url=seen_server.url, record=False) as s:
        n = len(s.events.client())
        with pytest.raises(RealtimeError, match="invalid_image"):
            await s.send_image(b"GIF89a but not really")
        assert len(s.events.client()) == n
        assert s.last_error.code == "invalid_image"


async def test_bad_data_url_in_a_hand_made_item_is_refused_as_the_server_would(
        seen_server) -> None:
    async with Session(url=seen_server.url, record=False) as s:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RealtimeError) as info:
                await s.create_item(image_message("data:image/bmp;base64,Qk0="))
    assert (info.value.code, info.value.param, info.value.source) == (
        "invalid_value", "item.content[0].image_url", "client")
    assert "send_image" in info.value.hint
