"""What the `agent` label of per-agent series shows: the username, the display name, or a keyed
pseudonym (config `agents.label`). Pure: no I/O; the key is read by the config's `Secret`.

Per-agent availability is personal data about employees in many jurisdictions; `hashed` lets a
team keep per-agent dashboards without putting names into Prometheus. The pseudonym is
HMAC-SHA256(key, username), truncated: stable across restarts and servers while the key stays the
same, not reversible without the key, and not guessable from a list of usernames without it (a
plain hash would be). Whoever holds the key can recompute the mapping (see docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

LabelMode = Literal["username", "name", "hashed"]
LABEL_MODES: tuple[LabelMode, ...] = ("username", "name", "hashed")
PSEUDONYM_HEX = 12  # 48 bits: readable, and a collision among 10,000 agents has odds ~2e-7
MIN_KEY_LENGTH = 16


def pseudonym(key: bytes, username: str, length: int = PSEUDONYM_HEX) -> str:
    """The keyed pseudonym of `username`: the first `length` hex digits of its HMAC-SHA256."""
    # surrogatepass: usernames are untrusted text and may hold a lone surrogate.
    digest = hmac.new(key, username.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return digest.hexdigest()[:length]


def agent_labels(
    usernames: Iterable[str],
    mode: LabelMode,
    *,
    key: bytes | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The `agent` label for each username; labels are unique, so no two rows share a series.

    - username: the username as it is.
    - name: the display name (Rocket.Chat's `name`); the username where there is none, and
      `name (username)` where two agents share a display name.
    - hashed: the keyed pseudonym; on the (unlikely) collision of two truncated pseudonyms both
      get the full 64 hex digits, which are unique.
    """
    users = sorted(set(usernames))
    if mode == "username":
        return {u: u for u in users}
    if mode == "hashed":
        if not key:
            raise ValueError("hashed labels need a key")
        short = {u: pseudonym(key, u) for u in users}
        return _disambiguate(short, lambda u, _: pseudonym(key, u, 64))
    if mode == "name":
        names = names or {}
        shown = {u: (names.get(u) or "").strip() or u for u in users}
        return _disambiguate(shown, lambda u, label: f"{label} ({u})")
    raise ValueError(f"unknown label mode {mode!r}")


def _disambiguate(labels: dict[str, str], longer: Callable[[str, str], str]) -> dict[str, str]:
    """Replace every label that two or more users share by `longer(user, label)`, until all are
    unique. One round is enough unless display names are made to look like the longer form
    ("Ann (ann)"); the bound keeps even that finite."""
    out = dict(labels)
    for _ in range(8):
        count = Counter(out.values())
        shared = [u for u, label in out.items() if count[label] > 1]
        if not shared:
            break
        for u in shared:
            out[u] = longer(u, out[u])
    return out
