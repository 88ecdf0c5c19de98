"""The SDKs' sessions look the environment up once, with the same outcome requests would
reach on every call."""

import requests

from integrations.requests_env import settle_environment


def test_without_proxies_the_session_stops_asking_and_keeps_the_ca_bundle(monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "CURL_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = requests.Session()

    settle_environment(session)

    assert session.trust_env is False
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"


def test_a_proxy_or_a_netrc_keeps_requests_looking(monkeypatch, tmp_path):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    session = requests.Session()
    settle_environment(session)
    assert session.trust_env is True

    monkeypatch.delenv("HTTPS_PROXY")
    for name in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.easypost.com login x password y\n")
    monkeypatch.setenv("NETRC", str(netrc))
    session = requests.Session()
    settle_environment(session)
    assert session.trust_env is True
