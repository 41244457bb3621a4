"""Responders see the conversation's images (realtime_nb.server.engines.responder).

Pins down: ``ResponseRequest.images`` / ``latest_images`` decode ``input_image`` parts into
InputImage (bytes, MIME type, size, detail, item id); a function that takes the request sees
them; a text-only function still gets the text; the EchoResponder acknowledges an image by size
and format only (it has no vision and must never pretend to describe it).
"""

from __future__ import annotations

from image_fixtures import image_bytes, image_message, image_url

from realtime_nb.protocol.images import InputImage, data_url
from realtime_nb.server.engines.responder import (
    CallableResponder,
    EchoResponder,
    ResponseRequest,
    as_responder,
    latest_user_images,
)


def _request(*items: dict) -> ResponseRequest:
    return ResponseRequest(conversation=list(items))


def test_request_images_are_decoded_in_conversation_order() -> None:
    png = image_bytes(64, 48, "PNG")
    jpg = image_bytes(32, 16, "JPEG")
    req = _request(image_message(data_url(png, "image/png"), "first", "low", "item_1"),
                   {"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": "ok"}]},
                   image_message(data_url(jpg, "image/jpeg"), item_id="item_2"))
    assert req.images == [InputImage(png, "image/png", 64, 48, "low", "item_1"),
                          InputImage(jpg, "image/jpeg", 32, 16, "auto", "item_2")]
    assert req.latest_images == [req.images[1]]


def test_latest_user_images_is_empty_when_the_last_user_turn_has_none() -> None:
    req = _request(image_message(image_url()),
                   {"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "and now?"}]})
    assert latest_user_images(req.conversation) == []
    assert len(req.images) == 1


def test_lambda_responder_taking_the_request_reports_the_image_size() -> None:
    responder = CallableResponder(
        lambda r: "{}x{} {}".format(*r.latest_images[0].size, r.latest_images[0].mime_type),
        takes="request")
    reply = responder.respond(_request(image_message(image_url(640, 480, "JPEG"), "hi")))
    assert reply.text == "640x480 image/jpeg"


def test_annotated_function_gets_the_request_with_its_images() -> None:
    def count(request: ResponseRequest) -> str:
        return f"{len(request.images)} images"

    reply = as_responder(count).respond(_request(image_message(image_url()),
                                                 image_message(image_url())))
    assert reply.text == "2 images"


def test_text_only_function_still_gets_the_text_beside_the_image() -> None:
    seen: list[str] = []
    as_responder(lambda text: seen.append(text) or "ok").respond(
        _request(image_message(image_url(), "what colour is it?")))
    assert seen == ["what colour is it?"]


def test_echo_acknowledges_an_image_by_size_and_format_with_what_was_said() -> None:
    reply = EchoResponder().respond(_request(image_message(image_url(640, 480), "look at this")))
    assert reply.text == 'You sent a 640×480 PNG image. You said: "look at this".'


def test_echo_acknowledges_an_image_alone_instead_of_saying_it_heard_nothing() -> None:
    reply = EchoResponder().respond(_request(image_message(image_url(320, 240, "JPEG"))))
    assert reply.text == "You sent a 320×240 JPEG image."


def test_echo_lists_several_images_of_one_turn() -> None:
    item = image_message(image_url(10, 20))
    item["content"].append({"type": "input_image", "image_url": image_url(30, 40, "JPEG")})
    reply = EchoResponder().respond(_request(item))
    assert reply.text == "You sent 2 images: a 10×20 PNG and a 30×40 JPEG."


def test_echo_speaks_of_the_latest_turn_only() -> None:
    reply = EchoResponder().respond(_request(
        image_message(image_url()),
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}))
    assert reply.text == 'You said: "hi".'
