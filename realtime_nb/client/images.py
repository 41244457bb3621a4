"""Pictures for the conversation: anything image-like to an ``input_image`` content part.

:func:`prepare_image` is what :meth:`Session.send_image <realtime_nb.client.Session.send_image>`
and ``Session.create_item(image=...)`` use. It takes

* a path (``str`` or ``os.PathLike``) of an image file,
* bytes of an image file (PNG and JPEG are sniffed from their first bytes and sent as they are;
  other formats Pillow reads — GIF, WebP, BMP, TIFF... — are re-encoded),
* a ``PIL.Image.Image``,
* a numpy ``uint8`` array ``H×W`` (grey), ``H×W×3`` (RGB) or ``H×W×4`` (RGBA),

and gives the PNG or JPEG bytes to send (the Realtime API takes those two only).

Re-encoding chooses PNG (lossless), unless that PNG would exceed :data:`PNG_MAX_BYTES` — then
JPEG at quality 90, transparency flattened onto white; a downsized JPEG stays a JPEG. A picture
larger than ``max_side`` pixels on its long side (2048 by default: GPT-4o's vision rule scales
high-detail images down to fit 2048×2048 anyway; whether gpt-realtime does the same is
UNCONFIRMED) is downsized first, and the returned :class:`PreparedImage` carries a ``note``
saying so (the Session also warns with :class:`~realtime_nb.client.errors.ImageWarning`).
Anything that is not a picture is refused with :class:`~realtime_nb.client.errors.RealtimeError`
code ``invalid_image``, before anything is sent.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

from realtime_nb.protocol.images import data_url, sniff_image

from .errors import RealtimeError

__all__ = ["MAX_SIDE", "PNG_MAX_BYTES", "PreparedImage", "prepare_image"]

#: Default longest side (pixels) of a picture sent; larger ones are downsized.
MAX_SIDE = 2048
#: A re-encoded picture goes as JPEG when its PNG would be larger than this.
PNG_MAX_BYTES = 1_500_000


@dataclass(frozen=True)
class PreparedImage:
    """A picture ready to send: ``data`` (PNG or JPEG file bytes), its ``mime_type``, size in
    pixels, and ``note`` (``""``, or what was changed: re-encoded, downsized)."""

    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    note: str = ""

    def part(self, detail: str = "auto") -> dict[str, Any]:
        """The ``input_image`` content part: ``{"type", "image_url", "detail"}``."""
        return {"type": "input_image", "image_url": data_url(self.data, self.mime_type),
                "detail": detail}


def _refuse(message: str) -> RealtimeError:
    return RealtimeError(
        "invalid_image", message, param="image", source="client", fatal=False,
        hint="send_image() takes an image file's path or bytes (PNG/JPEG are sent as they are; "
        "GIF, WebP, BMP... are re-encoded), a PIL image, or a numpy uint8 array H×W, H×W×3 or "
        "H×W×4.")


def prepare_image(image: Any, *, max_side: int = MAX_SIDE) -> PreparedImage:
    """Turn ``image`` into PNG/JPEG bytes to send (see the module docstring for what is taken,
    kept, re-encoded and downsized). Raises RealtimeError ``invalid_image`` for anything that is
    not a picture. May take tens of milliseconds for big pictures: run it in a thread from a
    loop that must stay responsive (the Session does)."""
    from PIL import Image, UnidentifiedImageError

    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
    source = "picture"
    original: tuple[int, int] | None = None  # the size of an image file given as bytes
    jpeg_source = False
    if isinstance(image, str | os.PathLike):
        path = os.fspath(image)
        try:
            with open(path, "rb") as f:
                image = f.read()
        except OSError as exc:
            raise _refuse(f"Cannot read the image file {path!r}: {exc.strerror or exc}.") from exc
        source = os.path.basename(path)
    if isinstance(image, bytearray | memoryview):
        image = bytes(image)
    if isinstance(image, bytes):
        if not image:
            raise _refuse("The image is empty (0 bytes).")
        try:
            with Image.open(io.BytesIO(image)) as probe:
                size, fmt = probe.size, probe.format
                probe.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _refuse(f"The {source} ({len(image)} bytes) is not an image Pillow can read "
                          f"({type(exc).__name__}).") from exc
        mime = sniff_image(image)
        if mime is not None and max(size) <= max_side:
            return PreparedImage(image, mime, size[0], size[1])
        img: Image.Image = Image.open(io.BytesIO(image))  # resized below: any Image
        original, jpeg_source = size, mime == "image/jpeg"
        if jpeg_source:  # decode at a reduced scale right away (JPEG's DCT scaling)
            scale = max_side / max(size)
            img.draft("RGB", (round(size[0] * scale), round(size[1] * scale)))
        note = "" if mime is not None else f"re-encoded from {fmt}"
    elif _is_pil(image):
        img, note = image, ""
    elif _is_array(image):
        img, note = _from_array(image), ""
    else:
        raise _refuse(f"Cannot send a {type(image).__name__} as an image.")
    try:
        img.load()
    except (OSError, ValueError, EOFError) as exc:
        raise _refuse(f"The {source} could not be decoded ({exc}).") from exc
    w0, h0 = original or img.size
    if max(img.size) > max_side or (w0, h0) != img.size:
        scale = max_side / max(w0, h0)
        size = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        down = f"downsized from {w0}×{h0} to {size[0]}×{size[1]} (max_side={max_side})"
        note = f"{note}; {down}" if note else down
    data, mime = _encode(img, photo=jpeg_source)
    return PreparedImage(data, mime, img.size[0], img.size[1], note)


def _is_pil(obj: Any) -> bool:
    from PIL import Image

    return isinstance(obj, Image.Image)


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "__array_interface__") and hasattr(obj, "shape")


def _from_array(arr: Any) -> Any:
    import numpy as np
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise _refuse(f"A numpy image must be uint8 (0..255), got {a.dtype}: convert it "
                      "first, e.g. (x * 255).clip(0, 255).astype('uint8').")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        mode = "L"
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        mode = "RGB" if a.shape[2] == 3 else "RGBA"
    else:
        raise _refuse(f"A numpy image must be H×W, H×W×3 or H×W×4, got shape {a.shape}.")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise _refuse(f"The numpy image is empty (shape {a.shape}).")
    return Image.fromarray(np.ascontiguousarray(a), mode)


def _encode(img: Any, photo: bool = False) -> tuple[bytes, str]:
    """PNG, or JPEG (quality 90, alpha flattened onto white) when the PNG is too large or
    the picture came as a JPEG (``photo``: a PNG of it would only be larger)."""
    from PIL import Image

    if img.mode not in ("1", "L", "LA", "RGB", "RGBA", "P"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    if not photo:
        buf = io.BytesIO()
        img.save(buf, "PNG", optimize=False, compress_level=1)
        if buf.tell() <= PNG_MAX_BYTES:
            return buf.getvalue(), "image/png"
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        img = flat
    elif img.mode != "RGB" and img.mode != "L":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue(), "image/jpeg"
