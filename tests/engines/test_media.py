"""Images under the operator's policy: data URLs always, http(s) only from public addresses when allowed (SSRF),
local paths only when allowed, nothing else. No test reaches past this machine: the fetch itself is tried
against a local server, with the public-address check (tested on its own) stepped over."""

import base64
import http.server
import socket
import threading

import pytest

from engines import media
from engines.errors import InvalidRequest
from engines.media import MediaPolicy, load_image, public_address
from tests.images import DATA_URL, PNG

OPEN = MediaPolicy(remote_urls=True, local_paths=True)


def test_a_data_url_is_always_an_image():
    assert load_image(DATA_URL, MediaPolicy(), "f").size == (8, 8)


@pytest.mark.parametrize(
    ("reference", "policy", "complaint"),
    [
        ("data:image/png;base64,!!!", MediaPolicy(), "does not decode"),
        ("data:text/plain;base64,aGk=", MediaPolicy(), "data:image/"),
        ("data:image/png;base64," + base64.b64encode(b"not a png").decode(), MediaPolicy(), "not an image"),
        (DATA_URL, MediaPolicy(max_bytes=10), "larger than 10 bytes"),
        ("file:///etc/passwd", OPEN, "file: URLs are not served"),
        ("/etc/passwd", MediaPolicy(), "local image paths are off"),
        ("/etc/passwd", OPEN, "not an image"),
        ("https://example.com/cat.png", MediaPolicy(), "image URLs are off"),
        ("http://127.0.0.1/cat.png", OPEN, "not a public address"),
        ("http://localhost:8000/cat.png", OPEN, "not a public address"),
        ("http://169.254.169.254/latest/meta-data", OPEN, "not a public address"),
        ("http://10.0.0.7/cat.png", OPEN, "not a public address"),
        ("http://[::1]/cat.png", OPEN, "not a public address"),
        # IPv6 forms of private IPv4 addresses, which Python's `is_global` passes: NAT64, 6to4, IPv4-compatible
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data", OPEN, "not a public address"),
        ("http://[2002:a00:1::]/cat.png", OPEN, "not a public address"),
        ("http://[::127.0.0.1]/cat.png", OPEN, "not a public address"),
        ("http://[::ffff:10.0.0.7]/cat.png", OPEN, "not a public address"),
    ],
)
def test_what_the_policy_refuses_is_refused_by_field(reference, policy, complaint):
    with pytest.raises(InvalidRequest) as caught:
        load_image(reference, policy, "messages.0.content.1")
    assert caught.value.field == "messages.0.content.1" and complaint in caught.value.message


def test_a_host_with_any_private_address_is_refused_and_a_public_one_is_pinned(monkeypatch):
    def resolving_to(*addresses):
        return lambda *_, **__: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 80)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("93.184.215.14", "192.168.1.5"))
    with pytest.raises(InvalidRequest, match="192.168.1.5"):
        public_address("rebinding.example", 80, "f")  # one private address among public ones is enough
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("93.184.215.14"))
    assert public_address("public.example", 80, "f") == "93.184.215.14"
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("64:ff9b::5db8:d70e"))  # 93.184.215.14 behind NAT64
    assert public_address("nat64.example", 80, "f") == "64:ff9b::5db8:d70e"


class _Images(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.end_headers()
            return
        body = PNG if self.path == "/cat.png" else b"\0" * 200_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.hosts.append(self.headers["Host"])

    def log_message(self, *_):
        pass


@pytest.fixture
def image_server(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.hosts = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Stand-in for a public host: the fetch is pinned to this address, as it is to a checked public one.
    monkeypatch.setattr(media, "public_address", lambda host, port, field: "127.0.0.1")
    yield server
    server.shutdown()


def test_a_fetch_goes_to_the_checked_address_caps_its_size_and_follows_no_redirect(image_server):
    port = image_server.server_address[1]
    assert load_image(f"http://images.example:{port}/cat.png", OPEN, "f").size == (8, 8)
    assert image_server.hosts == [
        f"images.example:{port}"
    ]  # the name in the Host header, the checked address on the wire
    with pytest.raises(InvalidRequest, match="larger than"):
        load_image(f"http://images.example:{port}/big.png", MediaPolicy(remote_urls=True, max_bytes=50_000), "f")
    with pytest.raises(InvalidRequest, match="answered 302"):
        load_image(f"http://images.example:{port}/redirect", OPEN, "f")
