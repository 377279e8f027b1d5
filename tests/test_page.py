"""exporter.page's join: the servers' parts put together without copying them, plain and
gzipped, with the CRC-32 combined from the parts' own (exporter.crc)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exporter.crc
from exporter.crc import crc32_combine
from exporter.exposition import FAMILIES
from exporter.page import ServerPage, join_parts

# A server's part: some families with text (as large as a per-agent family, sometimes), the
# others empty, as a server with no sample of them has.
chunk = st.one_of(
    st.just(b""), st.binary(max_size=200), st.binary(min_size=70_000, max_size=90_000)
)
server_parts = st.lists(
    st.lists(chunk, min_size=len(FAMILIES), max_size=len(FAMILIES)), min_size=0, max_size=3
)


def _gunzip_one_member(raw: bytes) -> bytes:
    one = zlib.decompressobj(16 + zlib.MAX_WBITS)  # exactly one member; CRC and size checked
    text = one.decompress(raw) + one.flush()
    assert one.eof and one.unused_data == b""
    return text


@pytest.fixture(params=["ctypes", "fallback"])
def combine_path(request, monkeypatch):
    """Both ways of combining: zlib's crc32_combine, and checksumming the bytes instead."""
    if request.param == "fallback":
        monkeypatch.setattr(exporter.crc, "_COMBINE", None)
    elif exporter.crc._COMBINE is None:
        pytest.skip("zlib's crc32_combine cannot be loaded here (the fallback is tested)")
    return request.param


# The fixture's patch holds for every example, which is what is wanted here.
@settings(
    max_examples=40,
    deadline=None,  # large parts are deflated; a loaded machine must not fail it
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(servers=server_parts, tail=st.binary(max_size=3000))
def test_joined_page_is_the_concatenation_and_one_gzip_member(combine_path, servers, tail):
    pages = [ServerPage(tuple(chunks)) for chunks in servers]
    joined = join_parts(pages)
    plain = joined.plain_bytes()
    assert joined.crc == zlib.crc32(plain) and joined.size == len(plain)
    assert _gunzip_one_member(joined.gzip_bytes()) == plain
    assert _gunzip_one_member(b"".join(joined.gzip_with(tail))) == plain + tail
    assert b"".join(joined.plain_with(tail)) == plain + tail
    for i, family in enumerate(FAMILIES):  # each family's header once, where it has samples
        header = f"# TYPE rocketchat_omnichannel_{family.name} {family.kind}\n".encode()
        assert plain.count(header) == any(chunks[i] for chunks in servers)


def test_large_parts_are_sent_as_they_are_not_copied():
    big = b"x" * 200_000
    chunks = [b""] * len(FAMILIES)
    chunks[0] = big
    joined = join_parts([ServerPage(tuple(chunks)), ServerPage(tuple(chunks))])
    assert sum(part is big for part in joined.plain) == 2


def test_crc32_combine_equals_the_crc_of_the_concatenation(combine_path):
    a, b = b"rocket" * 999, b"chat" * 12345
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), b) == zlib.crc32(a + b)
    assert crc32_combine(0, zlib.crc32(b""), b"") == 0
