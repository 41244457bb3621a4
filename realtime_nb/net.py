"""Network facts shared by client and server: which host names mean "this machine".

Below both ``client`` and ``server`` (like :mod:`realtime_nb.credentials`), so the three places
that ask "is this loopback?" — the server's bind address and browser origins, the client's
choice of the ``"local"`` key, and the client's proxy bypass — give one answer.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a URL's hostname or a bind address) is this machine's loopback.

    True for ``localhost`` (any case) and for loopback IP literals: ``127.0.0.0/8``, ``::1``
    (with or without URL brackets) and IPv4-mapped ``::ffff:127.x.y.z``. False for everything
    else, including ``""`` and ``0.0.0.0`` (every interface) and names that merely start with
    ``127.`` (``127.0.0.1.example.com`` resolves wherever its DNS says). Nothing is resolved.
    """
    if not host:
        return False
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
