"""Service-looking ids for what a :class:`~realtime_nb.protocol.state.SessionCore` creates.

:func:`new_id` (``item_…``, ``resp_…``, ``event_…``, ``call_…``) is used by every part of the
state machine and by the local server; import it from :mod:`realtime_nb.protocol.state` or
:mod:`realtime_nb.protocol`.
"""

from __future__ import annotations

import secrets

__all__ = ["new_id"]

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """A service-looking id such as ``item_Bd8f3kQ2...`` (prefix + 22 random characters)."""
    raw = secrets.token_bytes(22)
    return prefix + "_" + "".join(_ALNUM[b % 62] for b in raw)
