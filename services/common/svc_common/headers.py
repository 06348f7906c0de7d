"""Fast HTTP header parsing for ``http.client`` and ``http.server``.

Both parse every header block with ``http.client.parse_headers``, which hands the block to the
``email`` package's feed parser: about an eighth of the order service's CPU under load (profiled with
py-spy ``--gil`` at concurrency 64; the order service parses one request and three upstream responses
per order). :func:`parse_headers` reads the lines exactly as the stdlib does (same line and count
limits, same errors) and builds the same ``HTTPMessage`` directly when every line is a plain
``name: value`` header; any other block (folded lines, a line without a colon, ``From `` lines, bytes
outside ASCII) goes to the stdlib parser, so the result is the stdlib's in every case.
:func:`install` makes the stdlib use it (both modules look ``parse_headers`` up when they parse).
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any

_stdlib_parse_headers = http.client.parse_headers
#: A header line the email feed parser reads as one ``name: value`` header and nothing else.
_PLAIN = re.compile(rb"[\x21-\x39\x3b-\x7e]+:[\x20-\x7e\t]*\r?\n")
_FROM = b"From "


def parse_headers(fp: Any, _class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """``http.client.parse_headers``, without the email parser for plain header blocks."""
    lines = http.client._read_headers(fp)  # the stdlib's reading: same limits, same errors
    body = lines[:-1]  # _read_headers returns once it has read the end line (blank, or EOF)
    if not all(_PLAIN.fullmatch(line) and not line.startswith(_FROM) for line in body):
        return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
    msg = _class()
    for line in body:
        name, _, value = line.decode("ascii").partition(":")
        msg._headers.append((name, value.lstrip(" \t").rstrip("\r\n")))
    msg.set_payload("")
    return msg


def install() -> None:
    """Make ``http.client`` (responses) and ``http.server`` (requests) parse headers with it."""
    http.client.parse_headers = parse_headers  # type: ignore[assignment]
