"""Limits before work, against a real gateway process: the key is checked before any byte of the body is
read, a body is never held beyond its cap, and a slow sender is cut off. Requests go over raw sockets where
the point is what the gateway does before the client has sent everything (httpx would insist on sending
the whole body first)."""

import json
import socket

import httpx
import psutil
import pytest

from tests.gateway.conftest import API_KEY

MIB = 1024 * 1024
FAILURE_BOUND_S = 120  # httpx's 5 s default is a bet on a loaded machine's speed
# RSS moves by a few MiB for reasons of its own; a body held whole would move it by its 50 MiB.
MEMORY_SLACK = 30 * MIB


def _rss(gateway) -> int:
    return psutil.Process(gateway.process.pid).memory_info().rss


def _raw_request(gateway, head: str, body_chunks=(), *, chunked: bool = False) -> int:
    """Sends `head`, then `body_chunks` (chunked transfer encoding if `chunked`) for as long as the gateway
    has not answered; returns the status code it answered with."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=120) as sock:  # a bound for failure only
        sock.sendall(head.encode())
        for chunk in body_chunks:
            if _answered(sock):
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # it closed on us, as it does once it has answered
        reply = b""
        while b"\r\n" not in reply and (data := sock.recv(4096)):
            reply += data
    return int(reply.split(b" ", 2)[1])


def _answered(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def _head(path: str, *, key: str | None, length: int | None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n\r\n"


def test_a_keyless_request_is_refused_before_its_body_is_read(gateway):
    before = _rss(gateway)
    # 50 MiB announced and none of it sent: the 401 comes from the headers alone
    assert _raw_request(gateway, _head("/v1/chat/completions", key=None, length=50 * MIB)) == 401
    flood = (b"x" * MIB for _ in range(50))
    assert _raw_request(gateway, _head("/v1/chat/completions", key=None, length=None), flood, chunked=True) == 401
    assert _rss(gateway) - before < MEMORY_SLACK


@pytest.mark.parametrize(
    "body",
    [b'{"model": "echo", "messages": [', b"[" * 10_000 + b"]" * 10_000, b"\x00 not json"],
    ids=["truncated", "10000-deep", "garbage"],
)
def test_without_a_key_no_body_is_parsed_and_with_one_a_bad_body_is_a_400(gateway, body):
    url = f"{gateway.url}/v1/chat/completions"
    keyless = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=FAILURE_BOUND_S)
    assert keyless.status_code == 401 and keyless.json()["error"]["code"] == "invalid_api_key"
    keyed = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
        timeout=FAILURE_BOUND_S,
    )
    assert keyed.status_code == 400 and keyed.json()["error"]["type"] == "invalid_request_error"


def test_a_body_over_the_cap_is_a_413_and_never_held_whole(gateway):
    before = _rss(gateway)
    declared = _head("/v1/chat/completions", key=API_KEY, length=50 * MIB)
    assert _raw_request(gateway, declared) == 413  # refused from its Content-Length, nothing sent
    flood = (b"x" * MIB for _ in range(50))  # no length given: counted as it streams in
    assert _raw_request(gateway, _head("/v1/chat/completions", key=API_KEY, length=None), flood, chunked=True) == 413
    assert _rss(gateway) - before < MEMORY_SLACK


def test_a_body_that_does_not_arrive_in_time_is_a_408(start_gateway, echo_worker):
    impatient = start_gateway(api_keys=API_KEY, env={"INFERQ_GATEWAY_BODY_TIMEOUT_S": "1"})
    # announced and never sent: nothing this gateway could wait for ends the wait but its timeout
    assert _raw_request(impatient, _head("/v1/chat/completions", key=API_KEY, length=100)) == 408


def test_the_openapi_schema_is_behind_the_key(gateway):
    assert httpx.get(f"{gateway.url}/openapi.json", timeout=FAILURE_BOUND_S).status_code == 401
    keyed = httpx.get(
        f"{gateway.url}/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=FAILURE_BOUND_S
    )
    assert keyed.status_code == 200 and "/v1/chat/completions" in json.loads(keyed.text)["paths"]


def test_the_page_and_the_health_check_need_no_key(gateway):
    assert httpx.get(f"{gateway.url}/", timeout=FAILURE_BOUND_S).status_code == 200
    assert httpx.get(f"{gateway.url}/health", timeout=FAILURE_BOUND_S).status_code == 200


def test_the_paths_open_without_a_key_take_no_body(gateway):
    before = _rss(gateway)
    assert _raw_request(gateway, _head("/health", key=None, length=8 * MIB)) == 413  # refused from its length
    flood = (b"x" * MIB for _ in range(50))  # and a chunked one at its first byte
    assert _raw_request(gateway, _head("/", key=None, length=None), flood, chunked=True) == 413
    assert _rss(gateway) - before < MEMORY_SLACK
