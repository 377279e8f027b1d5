"""`${VAR}` and `${VAR:-default}` expansion of string values from the environment (`$${` for a
literal `${`). Values that used a variable become `Expanded`, so that validators may read them as
booleans or numbers. A failed reference is reported without echoing the value (it may be secret).
"""

from __future__ import annotations

import re
from typing import Any

from exporter.config.errors import Ctx, Expanded, join

_VAR_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")  # escape | reference | unterminated
_VAR_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)

_MAX_DEPTH = 64


def expand(ctx: Ctx, path: str, value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return ctx.add(path, "nested too deeply (is there a recursive YAML alias?)")
    if isinstance(value, str):
        return _expand_str(ctx, path, value)
    if isinstance(value, list):
        return [expand(ctx, f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand(ctx, join(path, k), v, depth + 1) for k, v in value.items()}
    return value


def _expand_str(ctx: Ctx, path: str, text: str) -> Any:
    if "${" not in text:
        return text
    out: list[str] = []
    pos = 0
    used_env = False
    for m in _VAR_REF.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$${":
            out.append("${")
            continue
        body = _VAR_BODY.fullmatch(m.group(1) or "") if token != "${" else None
        if body is None:
            # The reference text is not echoed: it sits in a value that may be a secret.
            return ctx.add_unexpanded(
                path,
                "invalid ${...} reference (use ${NAME} or ${NAME:-default} with NAME made of "
                "letters, digits and _; write $${ for a literal ${)",
            )
        name, default = body.group(1), body.group(2)
        got = ctx.environ.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                return ctx.add_unexpanded(
                    path,
                    f"environment variable {name} is not set "
                    f"(set it, or give a default with ${{{name}:-default}})",
                )
            got = default
        used_env = True
        out.append(got)
    out.append(text[pos:])
    result = "".join(out)
    return Expanded(result) if used_env else result
