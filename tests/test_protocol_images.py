"""Image input on the wire: ``input_image`` parts checked and counted by the local server.

Pins down what :func:`realtime_nb.protocol.images.decode_image_url` accepts (PNG/JPEG data URLs
whose bytes are that very format) and refuses (service-shaped ``invalid_value`` errors whose
``param`` points at the part; the wording is UNCONFIRMED), that SessionCore refuses a bad image in
``conversation.item.create`` and in ``response.create``'s inline input without changing the
conversation, and that usage reports approximate image tokens.
"""

from __future__ import annotations

import base64

import pytest
from image_fixtures import image_bytes, image_message, image_url

from realtime_nb.protocol import ProtocolError, Reply, SessionCore
from realtime_nb.protocol.images import (
    InputImage,
    data_url,
    decode_image_url,
    image_tokens,
    sniff_image,
)


# ------------------------------------------------------------------ decode_image_url
def test_png_data_url_decodes_to_its_bytes_size_and_type() -> None:
    raw = image_bytes(640, 480, "PNG")
    img = decode_image_url(data_url(raw, "image/png"), detail="low", item_id="item_1")
    assert img == InputImage(raw, "image/png", 640, 480, "low", "item_1")
    assert img.describe() == "640×480 PNG"


def test_a_decoded_image_gives_its_wire_form_back_for_another_model() -> None:
    """A responder forwarding the picture (e.g. to a vision model) gets the data URL again;
    ``image/jpg`` comes back as the canonical ``image/jpeg``."""
    raw = image_bytes(32, 24, "JPEG")
    b64 = base64.b64encode(raw).decode()
    img = decode_image_url(f"data:image/jpg;base64,{b64}")
    assert img.to_data_url() == f"data:image/jpeg;base64,{b64}"
    assert decode_image_url(img.to_data_url()) == img


def test_jpeg_data_url_decodes_and_image_jpg_is_read_as_jpeg() -> None:
    raw = image_bytes(320, 200, "JPEG")
    b64 = base64.b64encode(raw).decode()
    assert decode_image_url(f"data:image/jpeg;base64,{b64}").size == (320, 200)
    assert decode_image_url(f"data:image/jpg;base64,{b64}").mime_type == "image/jpeg"


def test_decoded_image_gives_pixels_as_numpy() -> None:
    img = decode_image_url(image_url(30, 20))
    assert img.to_numpy().shape == (20, 30, 3)


@pytest.mark.parametrize(("url", "said"), [
    ("https://example.com/cat.png", "a value that is not a data URL"),
    ("data:image/gif;base64,R0lGODlh", "unsupported MIME type 'image/gif'"),
    ("data:text/plain;base64,aGVsbG8=", "unsupported MIME type 'text/plain'"),
    ("data:image/png,rawbytes", "a value without the ';base64' separator"),
    ("data:image/png;base64,@@@not-base64@@@", "an invalid base64-encoded value"),
    ("data:image/png;base64,", "empty base64-encoded bytes"),
])
def test_bad_data_urls_are_refused_with_the_part_as_param(url: str, said: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_image_url(url, param="item.content[0].image_url")
    err = info.value
    assert (err.code, err.param) == ("invalid_value", "item.content[0].image_url")
    assert err.message.startswith("Invalid 'item.content[0].image_url'. Expected a base64-encoded "
                                  "data URL with an image MIME type")
    assert said in err.message


def test_bytes_that_are_not_an_image_are_refused() -> None:
    url = data_url(b"%PDF-1.4 this is not a picture", "image/png")
    with pytest.raises(ProtocolError, match="does not represent a valid image"):
        decode_image_url(url)


def test_image_of_another_format_than_declared_is_refused() -> None:
    url = data_url(image_bytes(10, 10, "JPEG"), "image/png")
    with pytest.raises(ProtocolError, match="declares 'image/png' but the image is JPEG"):
        decode_image_url(url)


def test_gif_bytes_declared_as_png_are_refused() -> None:
    with pytest.raises(ProtocolError, match="image is GIF"):
        decode_image_url(data_url(image_bytes(10, 10, "GIF", color=1, mode="P"), "image/png"))


def test_sniff_image_knows_png_and_jpeg_only() -> None:
    assert sniff_image(image_bytes(4, 4, "PNG")) == "image/png"
    assert sniff_image(image_bytes(4, 4, "JPEG")) == "image/jpeg"
    assert sniff_image(image_bytes(4, 4, "GIF", color=1, mode="P")) is None


@pytest.mark.parametrize(("size", "detail", "tokens"), [
    ((640, 480), "low", 85),
    ((640, 480), "high", 85 + 170 * 2),  # 2 × 1 tiles of 512
    ((512, 512), "auto", 85 + 170),  # auto counts as high
    ((4096, 2048), "high", 85 + 170 * 6),  # -> 2048×1024 -> 1536×768: 3 × 2 tiles
    ((100, 5000), "high", 85 + 170 * 4),  # -> 40×2048: 1 × 4 tiles
])
def test_image_tokens_follow_the_published_tile_rule(size: tuple[int, int], detail: str,
                                                      tokens: int) -> None:
    assert image_tokens(*size, detail) == tokens


# ------------------------------------------------------------------ SessionCore
def _core() -> SessionCore:
    core = SessionCore()
    core.start()
    core.drain()
    return core


def test_item_with_an_image_is_added_and_echoed_with_its_image_url() -> None:
    """The echo keeps ``image_url`` as sent (UNCONFIRMED whether the service echoes it)."""
    core = _core()
    url = image_url(64, 48)
    core.handle({"type": "conversation.item.create",
                 "item": image_message(url, "what is this?", "low", "item_img")})
    added = [e for e in core.drain() if e["type"] == "conversation.item.added"]
    part = added[0]["item"]["content"][1]
    assert part == {"type": "input_image", "image_url": url, "detail": "low"}
    assert core.item_image_tokens == {"item_img": 85}


def test_bad_image_in_item_create_is_refused_and_nothing_is_added() -> None:
    core = _core()
    core.handle({"type": "conversation.item.create", "event_id": "evt_1",
                 "item": image_message("data:image/webp;base64,UklGRg==", "hi")})
    (ev,) = core.drain()
    assert ev["type"] == "error"
    assert ev["error"]["param"] == "item.content[1].image_url"
    assert ev["error"]["event_id"] == "evt_1"
    assert core.items == []


def test_bad_image_inline_in_response_input_is_refused_before_any_response() -> None:
    core = _core()
    core.handle({"type": "response.create", "response": {
        "conversation": "none", "input": [image_message("data:image/png;base64,AAAA")]}})
    (ev,) = core.drain()
    assert ev["type"] == "error"
    assert ev["error"]["param"] == "response.input[0].content[0].image_url"
    assert core.responses == {} and core.jobs == []


def _finish_text(core: SessionCore) -> dict:
    job = next(j for j in core.take_jobs() if j.kind == "respond")
    core.response_output(job.payload["response_id"], Reply(text="ok"))
    core.response_finish(job.payload["response_id"])
    return next(e for e in core.drain() if e["type"] == "response.done")["response"]["usage"]


def test_usage_counts_image_tokens_inside_input_tokens() -> None:
    core = _core()
    core.handle({"type": "conversation.item.create",
                 "item": image_message(image_url(640, 480), "look")})
    core.handle({"type": "response.create", "response": {"output_modalities": ["text"]}})
    usage = _finish_text(core)
    details = usage["input_token_details"]
    assert details["image_tokens"] == 425
    assert usage["input_tokens"] == details["text_tokens"] + 425
    assert details["text_tokens"] < 20  # the base64 is not counted as text


def test_inline_and_referenced_images_are_counted_in_an_out_of_band_response() -> None:
    core = _core()
    core.handle({"type": "conversation.item.create",
                 "item": image_message(image_url(64, 48), item_id="item_a", detail="low")})
    core.drain()
    core.handle({"type": "response.create", "response": {
        "conversation": "none", "output_modalities": ["text"],
        "input": [{"type": "item_reference", "id": "item_a"},
                  image_message(image_url(64, 48), detail="high")]}})
    assert _finish_text(core)["input_token_details"]["image_tokens"] == 85 + 255


def test_deleting_an_item_forgets_its_image_tokens() -> None:
    core = _core()
    core.handle({"type": "conversation.item.create",
                 "item": image_message(image_url(), item_id="item_a")})
    core.handle({"type": "conversation.item.delete", "item_id": "item_a"})
    assert core.item_image_tokens == {}
