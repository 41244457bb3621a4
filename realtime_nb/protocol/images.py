"""Image input (``input_image`` content parts), named and checked as on the wire.

A user message may carry ``{"type": "input_image", "image_url": "data:image/png;base64,...",
"detail": "auto" | "low" | "high"}``. The GA reference says the URL is a base64 data URL with an
image MIME type, PNG or JPEG. :func:`decode_image_url` checks one as far as that is known and
returns an :class:`InputImage` (the file bytes, MIME type, size in pixels); the local server
(:class:`~realtime_nb.protocol.state.SessionCore`) refuses a bad one with a service-shaped
:class:`~realtime_nb.protocol.schema.ProtocolError`, the responders get the decoded images, and
the kernel-side mirror shows them.

UNCONFIRMED (not observed on the service): the exact wording and code of the refusals (they follow
the Responses API's published ``Invalid '<param>'. Expected a base64-encoded data URL with an
image MIME type ...`` messages, code ``invalid_value``); whether the service also accepts GIF or
WebP (the Realtime reference names PNG and JPEG only, so only those are accepted here); its size
limit for one image (none is documented; the local server's frame limit, 32 MiB, applies); how
it counts image tokens (:func:`image_tokens` is an approximation, see there); and whether its
``conversation.item.added`` / ``.done`` echo the ``image_url`` (the local server echoes it as
sent; the kernel-side mirror works either way).

Pillow reads the images (only the header and the integrity check of :meth:`PIL.Image.Image.verify`:
a PNG's chunk checksums, a JPEG's markers; pixels are decoded only when a caller asks for them).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .schema import ProtocolError

__all__ = [
    "IMAGE_MIME_TYPES",
    "InputImage",
    "check_item_images",
    "data_url",
    "decode_image_url",
    "image_tokens",
    "sniff_image",
]

#: The MIME types an ``input_image`` data URL may declare (the GA reference: PNG or JPEG).
IMAGE_MIME_TYPES = ("image/png", "image/jpeg")
_PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg"}
_EXAMPLE = "data:image/png;base64,aW1nIGJ5dGVzIGhlcmU="
_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),", re.IGNORECASE)

Detail = Literal["auto", "low", "high"]


@dataclass(frozen=True)
class InputImage:
    """One image of the conversation, decoded from its ``input_image`` part.

    ``data`` is the image file as sent (PNG or JPEG bytes, not pixels), ``mime_type``
    ``"image/png"`` or ``"image/jpeg"``, ``width`` × ``height`` its size in pixels, ``detail``
    the part's ``detail`` (``"auto"`` when absent), ``item_id`` the message it belongs to (None
    for an item given inline in ``response.input`` without an id).
    """

    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    detail: Detail = "auto"
    item_id: str | None = None

    @property
    def format(self) -> str:
        """``"PNG"`` or ``"JPEG"``."""
        return "PNG" if self.mime_type == "image/png" else "JPEG"

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    def describe(self) -> str:
        """``"640×480 PNG"``: size and format, for messages."""
        return f"{self.width}×{self.height} {self.format}"

    def to_pil(self) -> Any:
        """The image as a ``PIL.Image.Image`` (pixels decoded now)."""
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img

    def to_numpy(self) -> Any:
        """The pixels as a numpy ``uint8`` array, ``H×W×3`` (RGB) or ``H×W×4`` (with alpha)."""
        import numpy as np

        img = self.to_pil()
        mode = "RGBA" if "A" in img.getbands() or img.info.get("transparency") else "RGB"
        return np.asarray(img.convert(mode))

    def to_data_url(self) -> str:
        """The wire form again: ``data:<mime>;base64,...``."""
        return data_url(self.data, self.mime_type)


def data_url(data: bytes, mime_type: str) -> str:
    """``data:<mime_type>;base64,<data>`` (what ``input_image.image_url`` carries)."""
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def sniff_image(data: bytes) -> str | None:
    """``"image/png"`` / ``"image/jpeg"`` from the file's first bytes, None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return None


def _refuse(param: str, got: str) -> ProtocolError:
    return ProtocolError(
        "invalid_value",
        f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type "
        f"(e.g. '{_EXAMPLE}'), but got {got}",
        param,
    )


def decode_image_url(
    image_url: Any, *, param: str = "image_url", detail: Any = "auto",
    item_id: str | None = None,
) -> InputImage:
    """Check an ``input_image.image_url`` as the service would (as far as known) and decode it.

    Accepted: ``data:image/png;base64,...`` or ``data:image/jpeg;base64,...`` (``image/jpg`` is
    read as JPEG) whose base64 is valid and decodes to an image of that very format. Anything
    else raises :class:`ProtocolError` (code ``invalid_value``, ``param`` as given; wording
    UNCONFIRMED, see the module docstring): a URL that is not a data URL (the Realtime API takes
    no remote URLs), another MIME type, no ``;base64``, bad or empty base64, bytes that are not
    an image, an image of another format than declared, or one too large for Pillow's
    decompression-bomb guard.
    """
    if not isinstance(image_url, str):
        raise _refuse(param, f"a value of type {type(image_url).__name__}.")
    m = _DATA_URL.match(image_url[:512])
    if m is None:
        shown = image_url[:40] + ("..." if len(image_url) > 40 else "")
        raise _refuse(param, f"a value that is not a data URL ('{shown}').")
    mime = m.group(1).strip().lower()
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in IMAGE_MIME_TYPES:
        raise _refuse(param, f"unsupported MIME type '{m.group(1)}'.")
    if "base64" not in [p.strip().lower() for p in m.group(2).split(";")]:
        raise _refuse(param, "a value without the ';base64' separator.")
    payload = image_url[m.end():]
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(param, "an invalid base64-encoded value.") from None
    if not data:
        raise _refuse(param, "empty base64-encoded bytes.")
    width, height, fmt = _read_image(data, param)
    if _PIL_FORMATS.get(fmt) != mime:
        raise ProtocolError(
            "invalid_value",
            f"Invalid '{param}'. The data URL declares '{mime}' but the image is "
            f"{fmt or 'in another format'}.",
            param,
        )
    if detail not in ("auto", "low", "high"):
        detail = "auto"
    return InputImage(data, mime, width, height, detail, item_id)


def check_item_images(item: Any, path: str = "item") -> int:
    """Check every ``input_image`` part of a message item (see :func:`decode_image_url`) and
    return their approximate image tokens (:func:`image_tokens`; 0 when there are none).

    Raises ProtocolError with ``param`` such as ``item.content[1].image_url`` (``path`` is the
    item's own path: ``"item"``, or ``"response.input[0]"``). Used by the local server and by
    the Session before sending, so both refuse the same images the same way.
    """
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        return 0
    tokens = 0
    for i, part in enumerate(item.get("content") or ()):
        if isinstance(part, dict) and part.get("type") == "input_image":
            img = decode_image_url(part.get("image_url"), param=f"{path}.content[{i}].image_url",
                                   detail=part.get("detail", "auto"))
            tokens += image_tokens(img.width, img.height, img.detail)
    return tokens


def _read_image(data: bytes, param: str) -> tuple[int, int, str]:
    """``(width, height, Pillow format)`` of an image file, or a ProtocolError."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    bad = ProtocolError(
        "invalid_value",
        f"Invalid '{param}'. The image data you provided does not represent a valid image. "
        "Supported image formats: 'image/png', 'image/jpeg'.",
        param,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                size, fmt = img.size, img.format or ""
                img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ProtocolError(
            "invalid_value", f"Invalid '{param}'. The image is too large to be decoded.",
            param) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise bad from None
    if size[0] <= 0 or size[1] <= 0:
        raise bad
    return int(size[0]), int(size[1]), fmt


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Approximate input tokens of one image (what the local server reports as
    ``usage.input_token_details.image_tokens``).

    The rule is GPT-4o's published vision rule: ``detail="low"`` costs 85 tokens; otherwise the
    image is scaled to fit 2048×2048, then down so its shorter side is at most 768 px, and costs
    85 + 170 per 512-px tile. ``"auto"`` is counted as ``"high"``. UNCONFIRMED for gpt-realtime:
    the service's own count is not published and may differ.
    """
    if detail == "low":
        return 85
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles
