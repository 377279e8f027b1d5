"""Logging set-up: logfmt or JSON lines on stderr, like other Prometheus exporters.

Every record is exactly one line of valid UTF-8, whatever it carries: values come from
Rocket.Chat (agent names, error texts) and must not be able to forge a line, move the cursor of a
terminal (ANSI escapes, `\\r`) or break the encoding (lone surrogates). A record with an exception
keeps its traceback, escaped onto that one line (`traceback="..."` / a "traceback" key).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_STD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# Characters a logfmt value cannot carry as they are: C0/C1 controls and DEL, the Unicode line
# and paragraph separators (str.splitlines() breaks there), and lone surrogates (not encodable).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NEEDS_QUOTES = re.compile('[ ="\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]')
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _STD_ATTRS and not key.startswith("_"):
            out[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        out["err"] = f"{type(exc).__name__}: {exc}"
        # The traceback is what makes an unexpected error fixable; keep it.
        out["traceback"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        out["traceback"] = record.exc_text
    if record.stack_info:
        out["stack"] = formatter.formatStack(record.stack_info)
    return out


def _logfmt_key(key: str) -> str:
    return _KEY_UNSAFE.sub("_", key) or "_"


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = _UNSAFE.sub(_escape_char, text.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(
            f"{_logfmt_key(k)}={_logfmt_value(v)}" for k, v in _fields(record, self).items()
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # ensure_ascii (the default) escapes every control character, U+2028/9 and lone
        # surrogates, so the line is plain ASCII.
        fields = _fields(record, self)
        try:
            return json.dumps(fields, default=str)
        except (TypeError, ValueError):  # e.g. an extra= dict with tuple keys, or a cycle
            return json.dumps({k: str(v) for k, v in fields.items()})


def setup(level: str = "info", fmt: str = "logfmt", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # httpx logs every request with its URL at INFO; keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
