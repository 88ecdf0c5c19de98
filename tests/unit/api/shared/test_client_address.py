"""The client address the throttle counts by: the peer, unless a trusted proxy says."""

from __future__ import annotations

from unittest import mock

from aiohttp.test_utils import make_mocked_request

from api.shared.client_address import client_address, parse_networks


def request_from(peer: str, forwarded: str | None = None):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return make_mocked_request("POST", "/v1/auth/login", headers=headers, transport=transport)


PROXIES = parse_networks(["10.0.0.0/8"])


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards():
    request = request_from("203.0.113.5", "198.51.100.1")
    assert client_address(request, ()) == "203.0.113.5"


def test_an_untrusted_peer_cannot_claim_another_address():
    request = request_from("203.0.113.5", "198.51.100.1")
    assert client_address(request, PROXIES) == "203.0.113.5"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client():
    # the client wrote "1.2.3.4" itself; the proxies appended the real hops
    request = request_from("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.1")
    assert client_address(request, PROXIES) == "198.51.100.1"


def test_a_malformed_hop_ends_the_walk_at_the_last_proxy():
    request = request_from("10.0.0.2", "198.51.100.1, not-an-ip, 10.0.0.1")
    assert client_address(request, PROXIES) == "10.0.0.1"


def test_a_trusted_proxy_that_forwards_nothing_is_the_client():
    assert client_address(request_from("10.0.0.2"), PROXIES) == "10.0.0.2"
