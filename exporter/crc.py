"""CRC-32 of a concatenation from the CRC-32s of its parts (zlib's crc32_combine).

Python's zlib module does not offer crc32_combine; the zlib library Python links against
does, so it is called through ctypes. Where that library cannot be loaded (or answers
wrongly on the self-check below), the second part's bytes are checksummed instead: slower
(it reads them), never wrong.
"""

from __future__ import annotations

import ctypes
import zlib
from collections.abc import Callable

Combine = Callable[[int, int, int], int]


def _load() -> Combine | None:
    try:
        lib = ctypes.CDLL("libz.so.1")
        fn = lib.crc32_combine64
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64)
    fn.restype = ctypes.c_ulong

    def combine(crc1: int, crc2: int, len2: int) -> int:
        return fn(crc1, crc2, len2) & 0xFFFFFFFF

    a, b = b"rocketchat", b"omnichannel exporter" * 7
    if combine(zlib.crc32(a), zlib.crc32(b), len(b)) != zlib.crc32(a + b):
        return None
    return combine


_COMBINE = _load()


def crc32_combine(crc1: int, crc2: int, data2: bytes) -> int:
    """CRC-32 of A + B from A's CRC (crc1) and B's (crc2, of data2 = B)."""
    if _COMBINE is not None:
        return _COMBINE(crc1, crc2, len(data2))
    return zlib.crc32(data2, crc1)
