"""Text from outside, made safe once, where it enters.

Rocket.Chat (or a proxy in front of it) can send any JSON string, and a JSON string may hold a
lone surrogate (`"\\ud800"` is a valid escape). Python keeps it, but it cannot be encoded as
UTF-8, which the exposition format, the landing page and the logs all require: one such
username once killed every poller thread. So every string from Rocket.Chat passes through
`clean` in the parser, and nothing downstream has to care. Pure: no I/O.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# The only code points a Python str can hold that UTF-8 cannot encode: surrogates. A valid
# pair in JSON ("\ud83d\ude00") is decoded into one astral character, so any left are lone.
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """`text` with every code point UTF-8 cannot encode replaced by U+FFFD."""
    if text.isascii():  # nearly every username: no scan needed
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(REPLACEMENT, text)
    return text


def clip(text: str, limit: int = 200) -> str:
    """`clean(text)` cut to `limit` characters (with "..."), for quoting foreign error texts."""
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
