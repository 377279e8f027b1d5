"""The /metrics page: each server's part rendered on its own, all parts joined.

A server's part (`ServerPage`) holds its sample lines family by family, each also deflated
and with its CRC-32, so that joining the servers' parts into the plain and the gzipped page
is a list of references, whatever changed: no byte of another server's part is copied or
read again when one server updates. The families and their lines are exporter.exposition's.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.crc import crc32_combine
from exporter.exposition import FAMILIES, POLLED, PREFIX, Family, Memo, ServerView


class ServerPage:
    """One server's part of the page: its sample lines per family, rendered by its own poll.

    Kept per server so that one server's update re-renders only that server (the join with the
    others is a copy), and one server's bad data cannot break the others' pages. Each chunk is
    also kept deflated, so the gzip page is a join too (see `join`).
    """

    __slots__ = ("chunks", "deflated", "crcs", "memos")

    def __init__(
        self,
        chunks: tuple[bytes, ...],
        memos: dict[int, Memo] | None = None,
        deflated: tuple[bytes, ...] | None = None,
        crcs: tuple[int, ...] | None = None,
    ):
        self.chunks = chunks  # aligned with FAMILIES; b"" where the server has no sample
        if deflated is None:
            deflated = tuple(_deflate(c) if c else b"" for c in chunks)
        self.deflated = deflated
        self.crcs = crcs if crcs is not None else tuple(map(zlib.crc32, chunks))
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
    crcs = list(previous.crcs)
    for i, family in enumerate(FAMILIES):
        if family.reads == "health":
            assert family.lines is not None
            text = "".join(family.lines(PREFIX + family.name, view)).encode("utf-8", "replace")
            chunks[i], deflated[i] = text, _deflate(text) if text else b""
            crcs[i] = zlib.crc32(text)
    return ServerPage(tuple(chunks), previous.memos, tuple(deflated), tuple(crcs))


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
_HEADER_CRCS = tuple(map(zlib.crc32, _HEADERS))
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_FINAL_BLOCK = b"\x03\x00"  # an empty, final fixed-Huffman block
# Parts smaller than this are joined with their neighbours before they are kept: one write
# per part on a scrape, and most families are a few lines per server.
_SMALL = 1 << 16


@dataclass(frozen=True, slots=True)
class JoinedPage:
    """The whole page as parts to send one after another, plain and gzipped.

    `deflated` is the gzip header and every part's deflate segment, sync-flushed and not
    final: a tail deflated on its own continues the stream, and the trailer's CRC-32 is
    continued from `crc` (the plain page's). One gzip member, since not every client reads
    concatenated members (httpx, for one, stops after the first).
    """

    plain: tuple[bytes, ...]
    deflated: tuple[bytes, ...]
    crc: int  # CRC-32 of the plain page
    size: int  # its length in bytes

    def plain_with(self, tail: bytes) -> tuple[bytes, ...]:
        return (*self.plain, tail)

    def gzip_with(self, tail: bytes) -> tuple[bytes, ...]:
        """The gzip page with `tail` appended, still one member: the stream is finished by
        the tail's own final segment."""
        z = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        end = z.compress(tail) + z.flush(zlib.Z_FINISH)
        total = (self.size + len(tail)) & 0xFFFFFFFF
        return (*self.deflated, end + struct.pack("<II", zlib.crc32(tail, self.crc), total))

    def plain_bytes(self) -> bytes:
        return b"".join(self.plain)

    def gzip_bytes(self) -> bytes:
        trailer = struct.pack("<II", self.crc, self.size & 0xFFFFFFFF)
        return b"".join((*self.deflated, _FINAL_BLOCK, trailer))


EMPTY_PAGE = JoinedPage((), (_GZIP_HEADER,), 0, 0)


def join_parts(pages: Sequence[ServerPage]) -> JoinedPage:
    """The whole /metrics page from every server's part, without copying them.

    Each family's header appears once, followed by every server's samples of it, as the text
    format requires. No line is rendered, compressed or checksummed here: the page's CRC-32
    is combined from the parts' own, so the cost grows with the number of parts (families
    times servers), not with their bytes.
    """
    plain: list[bytes] = []
    packed: list[bytes] = [_GZIP_HEADER]
    crc = size = 0
    for i, header in enumerate(_HEADERS):
        present = [p for p in pages if p.chunks[i]]
        if not present:
            continue
        plain.append(header)
        packed.append(_HEADERS_DEFLATED[i])
        crc, size = crc32_combine(crc, _HEADER_CRCS[i], header), size + len(header)
        for p in present:
            chunk = p.chunks[i]
            plain.append(chunk)
            packed.append(p.deflated[i])
            crc, size = crc32_combine(crc, p.crcs[i], chunk), size + len(chunk)
    return JoinedPage(_coalesce(plain), _coalesce(packed), crc, size)


def _coalesce(parts: list[bytes]) -> tuple[bytes, ...]:
    """Runs of small parts joined into one; large parts kept as they are (not copied)."""
    out: list[bytes] = []
    run: list[bytes] = []
    for part in parts:
        if len(part) < _SMALL:
            run.append(part)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(part)
    if run:
        out.append(b"".join(run))
    return tuple(out)


def join(pages: Sequence[ServerPage]) -> tuple[bytes, bytes]:
    """The whole page, plain and gzipped, as two byte strings (see join_parts)."""
    joined = join_parts(pages)
    return joined.plain_bytes(), joined.gzip_bytes()


def render(views: Sequence[ServerView]) -> bytes:
    """The whole /metrics page for these servers, in the classic text format."""
    return join([render_server(v) for v in views])[0]
