"""Small real images for tests: PNG/JPEG bytes and their data URLs, made with Pillow."""

from __future__ import annotations

import io

from PIL import Image

from realtime_nb.protocol.images import data_url


def image_bytes(width: int = 64, height: int = 48, fmt: str = "PNG",
                color: tuple[int, ...] = (200, 30, 30), mode: str = "RGB") -> bytes:
    """An image file of ``width`` × ``height`` in Pillow format ``fmt`` (PNG, JPEG, GIF...)."""
    buf = io.BytesIO()
    img = Image.new(mode, (width, height), color)
    # a gradient so JPEG/PNG encoders have something to encode
    for x in range(0, width, max(1, width // 8)):
        img.putpixel((x, height // 2), (0,) * len(img.getbands()))
    img.save(buf, fmt)
    return buf.getvalue()


def image_url(width: int = 64, height: int = 48, fmt: str = "PNG") -> str:
    """A ``data:image/...;base64,...`` URL of a real image."""
    mime = {"PNG": "image/png", "JPEG": "image/jpeg"}[fmt]
    return data_url(image_bytes(width, height, fmt), mime)


def image_message(url: str, text: str | None = None, detail: str | None = None,
                  item_id: str | None = None) -> dict:
    """A user message item with an ``input_image`` part (and an ``input_text`` one first)."""
    part = {"type": "input_image", "image_url": url}
    if detail is not None:
        part["detail"] = detail
    content = ([{"type": "input_text", "text": text}] if text is not None else []) + [part]
    item = {"type": "message", "role": "user", "content": content}
    if item_id is not None:
        item["id"] = item_id
    return item
