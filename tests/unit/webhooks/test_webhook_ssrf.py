"""The SSRF guard: blocked address ranges, allow-lists, multi-address answers, URL checks."""

from __future__ import annotations

import socket

import pytest

from aia_workers.errors import AiaError
from aia_workers.webhooks import ssrf
from aia_workers.webhooks.ssrf import BlockedDestination, Destination, parse_url, resolve

PUBLIC = "93.184.215.14"


def _answer(*addresses: str) -> ssrf.Resolver:
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::5", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("fd00:ec2::254", "metadata"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("2002:7f00:1::", "loopback (6to4)"),
        ("192.0.2.10", "not globally routable"),
    ],
)
def test_blocked_addresses(address: str, why: str) -> None:
    with pytest.raises(BlockedDestination) as caught:
        resolve("https://hooks.example.com/in", resolver=_answer(address))
    message = str(caught.value)
    assert "hooks.example.com" in message
    assert address in message
    assert f"({why})" in message
    assert isinstance(caught.value, AiaError)


@pytest.mark.parametrize("literal", ["127.0.0.1", "[::1]", "[::ffff:10.0.0.1]", "169.254.169.254"])
def test_ip_literals_are_checked_without_a_lookup(literal: str) -> None:
    def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal needs no lookup")

    with pytest.raises(BlockedDestination):
        resolve(f"http://{literal}/hook", resolver=no_lookup)


def test_a_public_address_is_allowed() -> None:
    dest = resolve("https://Hooks.Example.com/in?x=1&y=2#frag", resolver=_answer(PUBLIC))
    assert dest == Destination("https", "hooks.example.com", 443, "/in?x=1&y=2", (PUBLIC,))


def test_a_public_ip_literal_is_allowed() -> None:
    dest = resolve(f"http://{PUBLIC}:8080")
    assert dest == Destination("http", PUBLIC, 8080, "/", (PUBLIC,))


def test_ipv4_mapped_public_address_is_allowed() -> None:
    dest = resolve("http://h.example.com/", resolver=_answer(f"::ffff:{PUBLIC}"))
    assert dest.addresses == (f"::ffff:{PUBLIC}",)


def test_allow_list_lets_listed_addresses_through_only() -> None:
    allow = ["127.0.0.1", "192.168.0.0/16"]
    dest = resolve("http://localhost:9000/hook", allow=allow, resolver=_answer("127.0.0.1"))
    assert dest.addresses == ("127.0.0.1",)
    assert resolve("http://192.168.4.4/", allow=allow).addresses == ("192.168.4.4",)
    with pytest.raises(BlockedDestination, match=r"10\.0\.0\.1"):
        resolve("http://10.0.0.1/", allow=allow)
    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.2"):
        resolve("http://127.0.0.2/", allow=allow)


def test_metadata_addresses_need_an_exact_allow_entry() -> None:
    with pytest.raises(BlockedDestination, match="metadata"):
        resolve("http://169.254.169.254/", allow=["169.254.0.0/16"])
    assert resolve("http://169.254.169.254/", allow=["169.254.169.254"]).addresses
    assert resolve("http://169.254.1.1/", allow=["169.254.0.0/16"]).addresses


def test_bad_allow_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="allow entry"):
        resolve(f"http://{PUBLIC}/", allow=["not-a-network"])


def test_one_private_answer_among_public_ones_blocks() -> None:
    with pytest.raises(BlockedDestination, match=r"10\.9\.8\.7.*private"):
        resolve("https://hooks.example.com/", resolver=_answer(PUBLIC, "10.9.8.7"))
    dest = resolve("https://hooks.example.com/", resolver=_answer(PUBLIC, "2606:2800:21f:cb07::1"))
    assert dest.addresses == (PUBLIC, "2606:2800:21f:cb07::1")


@pytest.mark.parametrize(
    "resolver",
    [_answer(), _answer("not-an-ip")],
)
def test_useless_answers_block(resolver: ssrf.Resolver) -> None:
    with pytest.raises(BlockedDestination, match=r"hooks\.example\.com"):
        resolve("https://hooks.example.com/", resolver=resolver)


def test_a_name_that_does_not_resolve_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def nxdomain(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    with pytest.raises(BlockedDestination, match="did not resolve"):
        resolve("https://nowhere.example.com/")


def test_the_system_resolver_is_the_default() -> None:
    with pytest.raises(BlockedDestination, match="loopback"):
        resolve("http://localhost:8080/hook")
    assert {"127.0.0.1", "::1"} & set(ssrf.system_resolver("localhost", 80))


def test_the_default_resolver_can_be_monkeypatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssrf, "system_resolver", _answer(PUBLIC))
    assert resolve("https://hooks.example.com/").addresses == (PUBLIC,)


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("http://example.com", ("http", "example.com", 80, "/")),
        ("HTTPS://EXAMPLE.com:8443/a/b?c=d", ("https", "example.com", 8443, "/a/b?c=d")),
        ("http://[2606:2800::1]:81/x", ("http", "2606:2800::1", 81, "/x")),
        ("https://bücher.example/", ("https", "xn--bcher-kva.example", 443, "/")),
    ],
)
def test_parse_url(url: str, parts: tuple[str, str, int, str]) -> None:
    assert parse_url(url) == parts


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://example.com/", "http or https"),
        ("example.com/hook", "http or https"),
        ("http:///hook", "needs a host"),
        ("http://:80/hook", "needs a host"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("http://example.com:0/", "1..65535"),
        ("http://example.com:65536/", "1..65535"),
        ("http://example.com:http/", "1..65535"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\r\nX-Evil: 1", "whitespace"),
        ("http://[::1/", "could not be parsed"),
        ("http://a..b/", "valid domain"),
        ("http://a!b.com/", "valid domain"),
    ],
)
def test_parse_url_rejections(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_url(url)


@pytest.mark.parametrize(
    ("host", "address", "why"),
    [
        ("169.254.169.254", "169.254.169.254", "metadata"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1", "loopback"),
        ("[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe", "metadata"),
        ("0.0.0.0", "0.0.0.0", "unspecified"),
        ("[::1]", "::1", "loopback"),
        ("[::]", "::", "unspecified"),
        ("2130706433", "127.0.0.1", "loopback"),
        ("0x7f000001", "127.0.0.1", "loopback"),
        ("0x7f.1", "127.0.0.1", "loopback"),
        ("0177.0.0.1", "127.0.0.1", "loopback"),
        ("127.1", "127.0.0.1", "loopback"),
        ("0", "0.0.0.0", "unspecified"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254", "metadata"),
        ("012.0.0.1", "10.0.0.1", "private"),
        ("[fe80::1%25eth0]", "fe80::1%25eth0", "link-local"),
    ],
)
def test_a_forbidden_address_in_the_url_is_refused_at_once(
    host: str, address: str, why: str
) -> None:
    with pytest.raises(BlockedDestination) as caught:
        ssrf.check_literal(f"http://{host}:8080/hook")
    assert caught.value.rule == why
    assert f"is the address {address}, which is blocked ({why})" in str(caught.value)
    # A delivery to such a URL reaches the same verdict without asking DNS.
    with pytest.raises(BlockedDestination, match=f"blocked \\({why}\\)"):
        resolve(f"http://{host}:8080/hook", resolver=_no_lookup)


def _no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} is an address and needs no lookup")


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC}/hook",
        "https://[2606:2800:21f:cb07::1]/hook",
        "https://hooks.example.com/hook",
        # Names are checked at delivery, when they are resolved: DNS may change.
        "http://localhost/hook",
        "http://internal.corp/hook",
        "http://1.2.3.4.5/hook",
        "http://0x7f.example/hook",
    ],
)
def test_public_addresses_and_names_pass_the_literal_check(url: str) -> None:
    ssrf.check_literal(url)


def test_the_allow_list_exempts_literals_too() -> None:
    ssrf.check_literal("http://2130706433:9000/hook", allow=["127.0.0.1"])
    ssrf.check_literal("http://10.1.2.3/hook", allow=["10.0.0.0/8"])
    dest = resolve("http://2130706433:9000/hook", allow=["127.0.0.1"], resolver=_no_lookup)
    assert dest.addresses == ("127.0.0.1",)
    with pytest.raises(BlockedDestination, match="metadata"):
        ssrf.check_literal("http://169.254.169.254/", allow=["169.254.0.0/16"])
    ssrf.check_literal("http://169.254.169.254/", allow=["169.254.169.254"])


def test_the_literal_check_refuses_unfit_urls() -> None:
    with pytest.raises(ValueError, match="http or https"):
        ssrf.check_literal("ftp://127.0.0.1/")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("::1", "::1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("0x7f.example", None),
    ],
)
def test_literal_address(host: str, address: str | None) -> None:
    found = ssrf.literal_address(host)
    assert (None if found is None else str(found)) == address
