"""An answer's body, read within bounds; and the error text an error answer carries.

`read_bounded` is what stops a huge, endless, compressed-bomb or dripping answer: it counts
bytes after decompression and watches the request's total deadline between reads.
"""

from __future__ import annotations

import json
import re
import time
import zlib

import httpx

from exporter.text import clean

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")


class Unreadable(Exception):
    """The answer's body could not be read within its bounds; the text says why."""


def clip(text: str, limit: int = 200) -> str:
    text = _SPACES.sub(" ", clean(text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(body: bytes) -> str:
    """Rocket.Chat's own error text (`error`, else `message`), or an HTML title, or the start."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "reason"):
            value = parsed.get(key)
            if isinstance(value, str) and value.strip():
                return clip(value)
    title = _TITLE.search(text)
    if title:
        return clip(title.group(1)) or "HTML page"
    return clip(text) or "empty body"


def decode_json(body: bytes) -> object:
    """The answer's JSON (its own function so the benchmark can time decoding apart)."""
    return json.loads(body)


def _decoder(encoding: str):
    """A streaming decoder for Content-Encoding, or None for identity."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise Unreadable(f"unsupported Content-Encoding {clip(encoding, 40)!r}")


def read_bounded(response: httpx.Response, limit: int, deadline: float) -> bytes:
    """The decoded body, or Unreadable once it passes `limit` bytes or `deadline`.

    Decompression is asked for at most `limit + 1` bytes at a time, so a small compressed body
    that expands enormously costs at most `limit` bytes of memory before it is refused.
    """
    if response.is_stream_consumed:  # an in-process transport answered with loaded content
        if len(response.content) > limit:
            raise Unreadable(f"answer larger than {limit} bytes")
        return response.content
    decoder = _decoder(response.headers.get("content-encoding", ""))
    out = bytearray()
    try:
        for chunk in response.iter_raw():
            if decoder is None:
                out += chunk
            else:
                data = decoder.decompress(chunk, limit + 1 - len(out))
                out += data
                while decoder.unconsumed_tail and len(out) <= limit:
                    out += decoder.decompress(decoder.unconsumed_tail, limit + 1 - len(out))
            if len(out) > limit:
                raise Unreadable(f"answer larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise Unreadable("answer still arriving when the request's deadline passed")
        if decoder is not None:
            out += decoder.flush()
    except zlib.error as exc:
        raise Unreadable(f"corrupt compressed body ({exc})") from None
    if len(out) > limit:
        raise Unreadable(f"answer larger than {limit} bytes")
    return bytes(out)
