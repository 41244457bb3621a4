"""``realtime_nb.net.is_loopback``: the one answer to "is this host this machine?".

Server (bind address, browser origins) and client (the ``"local"`` key, the proxy bypass) used
to answer it in two ways: the client took any name starting with ``127.`` for loopback.
"""

from __future__ import annotations

import pytest

from realtime_nb.net import is_loopback


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "127.0.0.1", "127.4.5.6", "::1",
                                  "[::1]", "::ffff:127.0.0.1"])
def test_loopback_names_and_addresses_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", [None, "", "0.0.0.0", "::", "192.168.1.2", "example.com",
                                  "127.0.0.1.example.com", "api.openai.com"])
def test_other_hosts_and_names_that_only_look_local_are_not(host: str | None) -> None:
    assert not is_loopback(host)
