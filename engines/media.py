"""Images a request refers to, loaded on the worker under the operator's policy.

- `data:image/...;base64,...` URLs: always (their size is capped);
- `http(s)://` URLs: only when the operator allows them (`INFERQ_MEDIA_REMOTE_URLS`), fetched with a size
  and time cap, never following a redirect, and only from public addresses: the host is resolved first, every
  address it resolves to must be a global one (no loopback, private, link-local or reserved range: the
  fleet's own network is not for a request to reach, SSRF), and the fetch goes to the address checked (a
  second resolution cannot swap it);
- local paths: only when the operator allows them (`INFERQ_MEDIA_LOCAL_PATHS`, for trusted producers that
  share a disk with the workers); never `file:` URLs.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engines.errors import InvalidRequest

MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MediaPolicy:
    remote_urls: bool = False
    local_paths: bool = False
    max_bytes: int = MAX_IMAGE_BYTES
    fetch_timeout_s: float = FETCH_TIMEOUT_S


def load_image(reference: str, policy: MediaPolicy, field: str) -> Any:
    """The image `reference` names, as a PIL image in RGB; a reference the policy refuses is an InvalidRequest."""
    raw = _image_bytes(reference, policy, field)
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidRequest(f"not an image this worker can read: {exc}", field=field) from None
    return image.convert("RGB")


def _image_bytes(reference: str, policy: MediaPolicy, field: str) -> bytes:
    if reference.startswith("data:"):
        header, _, payload = reference.partition(",")
        if not header.startswith("data:image/") or not header.endswith(";base64"):
            raise InvalidRequest("a data URL must be data:image/<type>;base64,<data>", field=field)
        if len(payload) * 3 // 4 > policy.max_bytes:
            raise InvalidRequest(f"the image is larger than {policy.max_bytes} bytes", field=field)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the data URL's base64 does not decode", field=field) from None
    scheme = urlsplit(reference).scheme.lower()
    if scheme in ("http", "https"):
        if not policy.remote_urls:
            raise InvalidRequest("image URLs are off on this fleet (INFERQ_MEDIA_REMOTE_URLS)", field=field)
        return _fetch(reference, policy, field)
    if scheme and len(scheme) > 1:  # file:, ftp:, gopher: ... (a one-letter "scheme" is a Windows drive)
        raise InvalidRequest(f"{scheme}: URLs are not served; send a data: or http(s) URL", field=field)
    if not policy.local_paths:
        raise InvalidRequest("local image paths are off on this fleet (INFERQ_MEDIA_LOCAL_PATHS)", field=field)
    try:
        with open(reference, "rb") as file:
            raw = file.read(policy.max_bytes + 1)
    except OSError as exc:
        raise InvalidRequest(f"cannot read {reference!r}: {exc.strerror}", field=field) from None
    if len(raw) > policy.max_bytes:
        raise InvalidRequest(f"the image is larger than {policy.max_bytes} bytes", field=field)
    return raw


def public_address(host: str, port: int, field: str) -> str:
    """The one address of `host` the fetch may use: every address it resolves to must be a global one."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InvalidRequest(f"cannot resolve {host!r}: {exc.strerror}", field=field) from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%")[0])):
            raise InvalidRequest(f"{host!r} resolves to {address}, which is not a public address", field=field)
    return addresses[0]


# IPv6 prefixes that carry an IPv4 address in their last 32 bits, which Python's `is_global` does not look into:
# NAT64's well-known prefix, and the deprecated IPv4-compatible form.
_EMBEDDING_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global and not multicast; an IPv6 address that reaches an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64)
    only if that IPv4 address is public too: `64:ff9b::a9fe:a9fe` is 169.254.169.254 behind a NAT64."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in network for network in _EMBEDDING_V4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
    return True


def _fetch(url: str, policy: MediaPolicy, field: str) -> bytes:
    import httpx

    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidRequest("the URL names no host", field=field)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = public_address(parts.hostname, port, field)
    pinned = parts._replace(netloc=f"[{address}]:{port}" if ":" in address else f"{address}:{port}").geturl()
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    give_up_at = time.monotonic() + policy.fetch_timeout_s  # the whole fetch, not each read
    chunks, size = [], 0
    try:
        with httpx.Client(timeout=policy.fetch_timeout_s, follow_redirects=False) as client:
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            reply = client.send(request, stream=True)
            try:
                if reply.status_code != 200:
                    raise InvalidRequest(f"fetching the image answered {reply.status_code}", field=field)
                for chunk in reply.iter_bytes():
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise InvalidRequest(f"the image is larger than {policy.max_bytes} bytes", field=field)
                    if time.monotonic() > give_up_at:
                        raise InvalidRequest(f"the image took more than {policy.fetch_timeout_s:g} s", field=field)
                    chunks.append(chunk)
            finally:
                reply.close()
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"fetching the image failed: {exc}", field=field) from None
    return b"".join(chunks)
