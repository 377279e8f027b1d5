"""The /metrics page: each server's part rendered on its own, all parts joined.

A server's part (`ServerPage`) holds its sample lines family by family, each also deflated,
so that joining the servers' parts into the plain and the gzipped page is a copy, whatever
changed. The families and their lines are exporter.exposition's.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from exporter.exposition import FAMILIES, POLLED, PREFIX, Family, Memo, ServerView


class ServerPage:
    """One server's part of the page: its sample lines per family, rendered by its own poll.

    Kept per server so that one server's update re-renders only that server (the join with the
    others is a copy), and one server's bad data cannot break the others' pages. Each chunk is
    also kept deflated, so the gzip page is a join too (see `join`).
    """

    __slots__ = ("chunks", "deflated", "memos")

    def __init__(
        self,
        chunks: tuple[bytes, ...],
        memos: dict[int, Memo] | None = None,
        deflated: tuple[bytes, ...] | None = None,
    ):
        self.chunks = chunks  # aligned with FAMILIES; b"" where the server has no sample
        if deflated is None:
            deflated = tuple(_deflate(c) if c else b"" for c in chunks)
        self.deflated = deflated
        self.memos = memos or {}  # per family index: what the next render may reuse


def render_server(
    view: ServerView, previous: ServerPage | None = None, same_snapshot: bool = False
) -> ServerPage:
    """This server's sample lines, family by family, as UTF-8.

    `previous` (this server's last page) lends the per-agent text that did not change; with
    `same_snapshot` (it was rendered from the very snapshot `view` holds) every family made
    from the snapshot is taken from it as it is: a new health (a fill's progress, a failed
    poll, a stall) costs only the health families. The result is the same bytes as a render
    without either.
    """
    if previous is not None and same_snapshot:
        return _health_only(view, previous)
    chunks = []
    memos: dict[int, Memo] = {}
    for i, family in enumerate(FAMILIES):
        if family.memo_lines is not None:
            memos[i] = {}
            old = previous.memos.get(i, {}) if previous is not None else {}
            lines = family.memo_lines(PREFIX + family.name, view, old, memos[i])
        else:
            assert family.lines is not None
            lines = family.lines(PREFIX + family.name, view)
        # Text from Rocket.Chat is cleaned where it is parsed (exporter.text); "replace" is
        # only a last line of defence, so that no string can ever make a render fail.
        chunks.append("".join(lines).encode("utf-8", "replace"))
    return ServerPage(tuple(chunks), memos)


def _health_only(view: ServerView, previous: ServerPage) -> ServerPage:
    chunks = list(previous.chunks)
    deflated = list(previous.deflated)
    for i, family in enumerate(FAMILIES):
        if family.reads == "health":
            assert family.lines is not None
            text = "".join(family.lines(PREFIX + family.name, view)).encode("utf-8", "replace")
            chunks[i], deflated[i] = text, _deflate(text) if text else b""
    return ServerPage(tuple(chunks), previous.memos, tuple(deflated))


def _header(family: Family) -> bytes:
    name = PREFIX + family.name
    return f"# HELP {name} {family.help}{POLLED}\n# TYPE {name} {family.kind}\n".encode()


_HEADERS = tuple(_header(f) for f in FAMILIES)


def _deflate(data: bytes) -> bytes:
    """A raw deflate segment ending on a byte boundary (sync flush), not final.

    Segments compressed on their own can be concatenated into one valid deflate stream: each
    refers back only into its own data. That is how pigz builds one stream in parallel.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # level 1: most of the gain, cheap
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


_HEADERS_DEFLATED = tuple(_deflate(h) for h in _HEADERS)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_FINAL_BLOCK = b"\x03\x00"  # an empty, final fixed-Huffman block


def join(pages: Sequence[ServerPage]) -> tuple[bytes, bytes]:
    """The whole /metrics page, plain and gzipped, from every server's part.

    Each family's header appears once, followed by every server's samples of it, as the text
    format requires. No line is rendered or compressed here: both pages are concatenations
    (plus one CRC-32 pass over the plain page), so their cost does not depend on how the
    servers' data changed.
    """
    plain: list[bytes] = []
    packed: list[bytes] = []
    for i, header in enumerate(_HEADERS):
        chunks = [p.chunks[i] for p in pages if p.chunks[i]]
        if not chunks:
            continue
        plain.append(header)
        plain.extend(chunks)
        packed.append(_HEADERS_DEFLATED[i])
        packed.extend(p.deflated[i] for p in pages if p.chunks[i])
    page = b"".join(plain)
    trailer = struct.pack("<II", zlib.crc32(page), len(page) & 0xFFFFFFFF)
    return page, b"".join((_GZIP_HEADER, *packed, _FINAL_BLOCK, trailer))


def render(views: Sequence[ServerView]) -> bytes:
    """The whole /metrics page for these servers, in the classic text format."""
    return join([render_server(v) for v in views])[0]
