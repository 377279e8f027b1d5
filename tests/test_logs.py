"""Log lines: one valid UTF-8 line per record, tracebacks kept, every control character escaped."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import logs
from exporter.logs import JsonFormatter, LogfmtFormatter

FORMATTERS = (LogfmtFormatter(), JsonFormatter())
# A logfmt line: key=value pairs, values bare (no space, =, " or \) or quoted with escapes.
_LOGFMT_PAIR = re.compile(r'[A-Za-z0-9_.:-]+=(?:[^ ="\\]+|"(?:[^"\\]|\\.)*")')


def _record(msg: str = "x", **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "exporter", "levelno": 30, "levelname": "WARNING", "msg": msg}
    )
    record.__dict__.update(extra)
    return record


def _logfmt_fields(line: str) -> dict[str, str]:
    """Parse a logfmt line back, failing on anything that is not a well-formed pair."""
    pos, out = 0, {}
    while pos < len(line):
        m = _LOGFMT_PAIR.match(line, pos)
        assert m, f"malformed logfmt at {pos}: {line[pos : pos + 40]!r}"
        key, _, value = m.group(0).partition("=")
        out[key] = value
        pos = m.end()
        if pos < len(line):
            assert line[pos] == " ", line
            pos += 1
    return out


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    # Our escapes are a subset of Python's unicode_escape (\\, \", \n, \r, \t, \xNN, \uNNNN).
    return value[1:-1].encode("ascii", "backslashreplace").decode("unicode_escape")


def _assert_one_clean_line(line: str) -> None:
    assert len(line.splitlines()) <= 1, repr(line)
    line.encode("utf-8")  # raises on a lone surrogate
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line), repr(line)


def _raise_and_log(formatter: logging.Formatter) -> str:
    log = logging.getLogger("exporter.test_logs")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            {}["missing"]
        except KeyError:
            log.exception("poll failed unexpectedly")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    return stream.getvalue()


def test_logfmt_keeps_the_traceback_on_one_line():
    out = _raise_and_log(LogfmtFormatter())
    assert out.count("\n") == 1 and out.endswith("\n")
    fields = _logfmt_fields(out.rstrip("\n"))
    assert fields["err"] == "\"KeyError: 'missing'\""
    traceback = _unquote(fields["traceback"])
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert "_raise_and_log" in traceback and 'KeyError: "missing"' not in traceback
    assert traceback.rstrip().endswith("KeyError: 'missing'")


def test_json_keeps_the_traceback_on_one_line():
    out = _raise_and_log(JsonFormatter())
    assert out.count("\n") == 1
    data = json.loads(out)
    assert data["err"] == "KeyError: 'missing'"
    assert data["traceback"].startswith("Traceback (most recent call last):\n")
    assert "_raise_and_log" in data["traceback"]


def test_no_traceback_field_without_an_exception():
    for formatter in FORMATTERS:
        assert "traceback" not in formatter.format(_record("plain"))


def test_stack_info_is_kept_escaped():
    record = _record("where", stack_info='Stack (most recent call last):\n  File "x"')
    fields = _logfmt_fields(LogfmtFormatter().format(record))
    assert _unquote(fields["stack"]).startswith("Stack (most recent call last):\n")


def test_carriage_return_and_ansi_are_quoted_and_escaped():
    line = LogfmtFormatter().format(_record("x", agent="a\rb", err="\x1b[31mred\x1b[0m"))
    assert 'agent="a\\rb"' in line
    assert 'err="\\x1b[31mred\\x1b[0m"' in line
    _assert_one_clean_line(line)


def test_nul_del_c1_and_line_separators_are_escaped():
    line = LogfmtFormatter().format(_record("x", v="a\x00b\x7fc\x85d\u2028e\u2029f"))
    assert 'v="a\\x00b\\x7fc\\x85d\\u2028e\\u2029f"' in line
    _assert_one_clean_line(line)


def test_lone_surrogates_do_not_break_the_encoding():
    for formatter in FORMATTERS:
        line = formatter.format(_record("bad \udcff", agent="\ud800"))
        _assert_one_clean_line(line)
    assert 'agent="\\ud800"' in LogfmtFormatter().format(_record("x", agent="\ud800"))


def test_plain_values_stay_bare_and_unicode_readable():
    line = LogfmtFormatter().format(_record("x", agent="jürgen", n=3, empty=""))
    assert "agent=jürgen" in line and "n=3" in line and 'empty=""' in line


def test_odd_extra_keys_cannot_forge_fields():
    line = LogfmtFormatter().format(_record("x", **{"a b=c\n": "v"}))
    assert _logfmt_fields(line)["a_b_c_"] == "v"


def test_json_survives_unserialisable_extras():
    data = json.loads(JsonFormatter().format(_record("x", odd={(1, 2): "tuple key"})))
    assert "tuple key" in data["odd"]


def test_setup_writes_through_the_chosen_formatter():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("info", "json", stream)
        logging.getLogger("exporter.x").info("hello", extra={"agent": "\r\x1b[2K"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    data = json.loads(stream.getvalue())
    assert data["msg"] == "hello" and data["agent"] == "\r\x1b[2K"
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


# ---- properties ------------------------------------------------------------------------------

# Text biased towards what breaks lines and terminals: \r, \n, ANSI escapes, lone surrogates.
_NASTY = st.sampled_from(
    ["\r", "\n", "\r\n", "\x1b[31m", "\x1b[2K", "\x1b]0;title\x07", "\x00", "\x85", "\u2028"]
    + ["\ud800", "\udfff", "\udc80", '"', "\\", "=", " ", "\\n", '\\"']
)
_TEXT = st.lists(st.one_of(_NASTY, st.text(max_size=8)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT, _TEXT)
def test_logfmt_round_trips_any_text_on_one_clean_line(message, value):
    line = LogfmtFormatter().format(_record(message, agent=value))
    _assert_one_clean_line(line)
    fields = _logfmt_fields(line)
    # Compared as ascii(): a failure report with a raw lone surrogate crashes pytest-xdist.
    assert ascii(_unquote(fields["msg"])) == ascii(message)
    assert ascii(_unquote(fields["agent"])) == ascii(value)


@settings(max_examples=300, deadline=None)
@given(_TEXT, _TEXT)
def test_json_round_trips_any_text_on_one_clean_line(message, value):
    line = JsonFormatter().format(_record(message, agent=value))
    _assert_one_clean_line(line)
    assert line.isascii()
    data = json.loads(line)
    assert ascii(data["msg"]) == ascii(_as_json_reads(message))
    assert ascii(data["agent"]) == ascii(_as_json_reads(value))


def _as_json_reads(text: str) -> str:
    """JSON escapes code units: two adjacent lone surrogates (high, low) read back as the one
    character of that pair. The line is still one valid line; only that pairing is lost."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@settings(max_examples=100, deadline=None)
@given(_TEXT)
def test_exception_text_with_control_characters_stays_on_one_line(text):
    try:
        raise ValueError(text)
    except ValueError:
        record = logging.LogRecord("exporter", 40, __file__, 1, "boom", None, sys.exc_info())
    for formatter in FORMATTERS:
        _assert_one_clean_line(formatter.format(record))
