"""Header parsing without the email parser (svc_common.headers): the stdlib's result in every case."""

from __future__ import annotations

import email.utils
import http.client
import io
import time

import pytest
from svc_common import headers
from svc_common.server import _http_date

BLOCKS = [
    b"Host: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 53\r\n\r\n",
    b"\r\n", b"", b"A: b\nC:d \t\r\n\n", b"A:b\r\nA: c\r\n\r\n", b"X-Empty:\r\n\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody after the headers",
    b"A: b",  # no end of headers (connection closed)
    # Not plain: the stdlib parser decides (folded line, no colon, "From ", Latin-1 bytes, space in name).
    b"X: 1\r\n folded\r\n\r\n", b"NoColon\r\nA: b\r\n\r\n", b"From x\r\n\r\n", b"A: \xe9t\xe9\r\n\r\n",
    b"Bad Name: x\r\n\r\n", b"A: b\r\n\tc\r\nD: e\r\n\r\n",
]


@pytest.mark.parametrize("block", BLOCKS, ids=range(len(BLOCKS)))
def test_the_same_message_as_the_stdlib(block):
    fast, stdlib = headers.parse_headers(io.BytesIO(block)), headers._stdlib_parse_headers(io.BytesIO(block))
    assert type(fast) is type(stdlib) is http.client.HTTPMessage
    assert fast.items() == stdlib.items()
    assert fast.get_payload() == stdlib.get_payload()
    assert [type(d) for d in fast.defects] == [type(d) for d in stdlib.defects]
    assert fast.get_all("A") == stdlib.get_all("A") and fast.get("content-length") == stdlib.get("Content-Length")


def test_the_stdlib_limits_and_errors_hold():
    with pytest.raises(http.client.LineTooLong):
        headers.parse_headers(io.BytesIO(b"A: " + b"x" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        headers.parse_headers(io.BytesIO(b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n"))


def test_it_reads_exactly_the_header_block():
    stream = io.BytesIO(b"A: b\r\n\r\nBODY")
    headers.parse_headers(stream)
    assert stream.read() == b"BODY"


def test_install_makes_client_and_server_use_it(monkeypatch):
    monkeypatch.setattr(http.client, "parse_headers", headers._stdlib_parse_headers)
    headers.install()
    assert http.client.parse_headers is headers.parse_headers


def test_the_date_header_is_the_current_second():
    now = int(time.time())
    assert _http_date(now) == email.utils.formatdate(now, usegmt=True)
    assert _http_date(now + 1) == email.utils.formatdate(now + 1, usegmt=True)
