"""TLS and basic auth for the exporter's own endpoint, from `--web.config.file`.

The file format is that of Prometheus's exporter-toolkit (node_exporter's `--web.config.file`),
for the parts Python's TLS can honour, so one file can serve several exporters::

    tls_server_config:
      cert_file: server.crt        # PEM; relative paths are taken from this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert  # or VerifyClientCertIfGiven;
                                                     # default NoClientCert
      client_ca_file: clients.crt  # required with the two client_auth_type values above
      min_version: TLS12           # TLS10 | TLS11 | TLS12 | TLS13 (default TLS12)
      max_version: TLS13
    basic_auth_users:
      prometheus: $2y$10$...       # bcrypt hash: htpasswd -nBC 10 "" | tr -d ':\\n'

As with exporter-toolkit, when users are configured every path needs the password, /healthz and
/readyz included (probes can send an Authorization header, or use tcpSocket). The file, and the
certificate files it names, are checked for changes at most once a second: a rotated
certificate or a changed user list applies to new connections and requests without a restart.
A change that does not validate is logged and the previous settings stay in force. Turning TLS
on or off needs a restart (the listening socket is created at start).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.config.yamlfile import ConfigError
from exporter.config.yamlfile import load_yaml as _load_yaml

try:
    import bcrypt
except ImportError:  # only needed when basic_auth_users is set; then it is an error
    bcrypt = None  # type: ignore[assignment]

log = logging.getLogger("exporter.web")

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
)
# exporter-toolkit keys this exporter cannot honour: an error, never silently ignored.
UNSUPPORTED_TLS_KEYS = {
    "cipher_suites": "Python's TLS picks secure cipher suites itself",
    "curve_preferences": "Python's TLS picks curves itself",
    "prefer_server_cipher_suites": "Python's TLS always prefers the server's order",
    "client_allowed_sans": "not supported by this exporter",
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_BCRYPT = re.compile(r"\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}")
_HASH_HINT = (
    "use a bcrypt hash, e.g. from: htpasswd -nBC 10 \"\" | tr -d ':\\n', or "
    "python -c 'import bcrypt; print(bcrypt.hashpw(b\"PASSWORD\", bcrypt.gensalt()).decode())'"
)
# A hash of nothing anyone knows: unknown users are checked against it, so that a wrong user
# name costs as long as a wrong password (no user enumeration by timing).
_DUMMY_HASH = b"$2b$10$H1tfHMq8.fSyg4SpBgyGSu51/FC4bliAKf1/Jmc4Pgf1oHAhDJofq"
RECHECK_SECONDS = 1.0
AUTH_CACHE_SIZE = 64
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class WebConfigError(ConfigError):
    """Invalid web configuration; one line per problem, key path first."""


@dataclass(frozen=True)
class TLSSettings:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass(frozen=True)
class WebConfig:
    tls: TLSSettings | None = None
    users: tuple[tuple[str, bytes], ...] = ()  # (user, bcrypt hash)

    @property
    def files(self) -> tuple[str, ...]:
        """The files besides the web config itself whose change means a reload."""
        if self.tls is None:
            return ()
        return tuple(
            f
            for f in (self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file)
            if f is not None
        )

    def describe(self) -> str:
        parts = []
        if self.tls is None:
            parts.append("TLS off")
        else:
            clients = {
                "NoClientCert": "",
                "VerifyClientCertIfGiven": ", client certificates verified if given",
                "RequireAndVerifyClientCert": ", client certificates required",
            }[self.tls.client_auth_type]
            parts.append(f"TLS on (min {self.tls.min_version}{clients})")
        n = len(self.users)
        parts.append(f"basic auth for {n} user{'s' if n != 1 else ''}" if n else "no basic auth")
        return ", ".join(parts)


# ---- loading and validation ----------------------------------------------------------------


def load_web_config(path: str) -> WebConfig:
    """Read and validate the web config file; also loads the certificates, so a key that does
    not match its certificate is found now, not at the first scrape."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise WebConfigError(
            f"{path}: web config file not found (check --web.config.file)"
        ) from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{path}: web config file is not UTF-8 text") from None
    except OSError as e:
        raise WebConfigError(f"{path}: cannot read web config file ({e.strerror})") from None
    try:
        data = _load_yaml(path, text)
    except ConfigError as e:
        raise WebConfigError(list(e.errors)) from None
    config = parse_web_config(data, base_dir=os.path.dirname(os.path.abspath(path)))
    if config.tls is not None:
        ssl_context(config.tls)
    return config


def parse_web_config(data: object, *, base_dir: str = ".") -> WebConfig:
    """Validate parsed YAML. Raises WebConfigError listing every problem."""
    errors: list[str] = []
    if data is None:
        return WebConfig()  # an empty file: plain HTTP, no auth (as exporter-toolkit)
    if not isinstance(data, dict):
        raise WebConfigError(f"web config: must be a mapping, got {_describe(data)}")
    for key in data:
        if key not in TOP_KEYS:
            errors.append(f"{key}: unknown key (expected one of {', '.join(TOP_KEYS)})")
    if data.get("http_server_config") is not None:
        errors.append(
            "http_server_config: not supported by this exporter (remove it; HTTP/2 and custom "
            "headers are not available)"
        )
    tls = _tls(data.get("tls_server_config"), base_dir, errors)
    users = _users(data.get("basic_auth_users"), errors)
    if errors:
        raise WebConfigError(errors)
    return WebConfig(tls=tls, users=users)


def _tls(section: Any, base_dir: str, errors: list[str]) -> TLSSettings | None:
    if section is None:
        return None
    p = "tls_server_config"
    if not isinstance(section, dict):
        errors.append(
            f"{p}: must be a mapping with cert_file and key_file, got {_describe(section)}"
        )
        return None
    for key in section:
        if key in UNSUPPORTED_TLS_KEYS:
            errors.append(f"{p}.{key}: not supported ({UNSUPPORTED_TLS_KEYS[key]}); remove it")
        elif key not in TLS_KEYS:
            errors.append(f"{p}.{key}: unknown key (expected one of {', '.join(TLS_KEYS)})")
    before = len(errors)
    cert = _file(section, "cert_file", base_dir, errors, required=True)
    key = _file(section, "key_file", base_dir, errors, required=True)
    ca = _file(section, "client_ca_file", base_dir, errors, required=False)
    auth = section.get("client_auth_type", "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        errors.append(
            f"{p}.client_auth_type: {auth} (a client certificate without verification) is not "
            "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with "
            "client_ca_file"
        )
    elif auth not in CLIENT_AUTH:
        errors.append(
            f"{p}.client_auth_type: must be one of {', '.join(CLIENT_AUTH)}, got {_describe(auth)}"
        )
    elif auth == "NoClientCert" and ca is not None:
        errors.append(
            f"{p}.client_ca_file: set but client_auth_type is NoClientCert (set "
            "client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file)"
        )
    elif auth != "NoClientCert" and ca is None and "client_ca_file" not in section:
        errors.append(
            f"{p}.client_ca_file: required with client_auth_type {auth} (the CA that signs the "
            "clients' certificates)"
        )
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", None)):
        value = section.get(name, default)
        if value is not None and value not in TLS_VERSIONS:
            errors.append(
                f"{p}.{name}: must be one of {', '.join(TLS_VERSIONS)}, got {_describe(value)}"
            )
            value = None
        versions[name] = value
    lo, hi = versions["min_version"], versions["max_version"]
    if lo and hi and TLS_VERSIONS[lo] > TLS_VERSIONS[hi]:
        errors.append(f"{p}.max_version: {hi} is below min_version {lo}")
    if len(errors) > before or cert is None or key is None:
        return None
    return TLSSettings(
        cert_file=cert,
        key_file=key,
        client_auth_type=auth,
        client_ca_file=ca,
        min_version=lo or "TLS12",
        max_version=hi,
    )


def _file(section: dict, name: str, base_dir: str, errors: list[str], *, required: bool):
    path = f"tls_server_config.{name}"
    value = section.get(name)
    if value is None or value == "":
        if required:
            errors.append(f"{path}: required (a PEM file)")
        return None
    if not isinstance(value, str):
        errors.append(f"{path}: must be a file path (a string), got {_describe(value)}")
        return None
    file = os.path.join(base_dir, os.path.expanduser(value))
    try:
        with open(file, "rb"):
            pass
    except FileNotFoundError:
        errors.append(f"{path}: file not found: {file}")
        return None
    except OSError as e:
        errors.append(f"{path}: cannot read {file}: {e.strerror}")
        return None
    return file


def _users(section: Any, errors: list[str]) -> tuple[tuple[str, bytes], ...]:
    if section is None:
        return ()
    p = "basic_auth_users"
    if not isinstance(section, dict):
        errors.append(
            f"{p}: must be a mapping of user name to bcrypt hash, got {_describe(section)}"
        )
        return ()
    users = []
    for user, hashed in section.items():
        if not isinstance(user, str) or not user or ":" in user:
            errors.append(f"{p}: user name {user!r} must be a non-empty string without ':'")
            continue
        # Never echo the value: someone may have put a plain password here.
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            errors.append(f"{p}.{user}: not a bcrypt hash ({_HASH_HINT})")
            continue
        users.append((user, hashed.encode("ascii")))
    if users and bcrypt is None:
        errors.append(
            f"{p}: checking bcrypt hashes needs the Python package bcrypt (pip install bcrypt)"
        )
    return tuple(users)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """A server-side SSLContext; raises WebConfigError naming the file that does not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as e:
        raise WebConfigError(
            f"tls_server_config.cert_file/key_file: cannot load {tls.cert_file} with "
            f"{tls.key_file} ({e.reason or e}; check that both are PEM and the key belongs to "
            "the certificate)"
        ) from None
    except OSError as e:
        raise WebConfigError(
            f"tls_server_config.cert_file/key_file: cannot read them ({e.strerror})"
        ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as e:
            raise WebConfigError(
                f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file} "
                f"({getattr(e, 'reason', None) or e}; a PEM bundle of CA certificates)"
            ) from None
    return context


# ---- at run time ------------------------------------------------------------------------------


class WebGuard:
    """The web config in force: TLS context per connection, basic auth per request.

    Re-reads the file (and the certificates it names) when any of them changed, at most once
    per `RECHECK_SECONDS`; an invalid change is logged once and the previous settings kept.
    Thread-safe: every HTTP handler thread calls it.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._config = load_web_config(path)
        self._context = ssl_context(self._config.tls) if self._config.tls else None
        self._stamps = self._stat()
        self._checked = clock()
        self._failed_stamps: tuple | None = None
        self._ok: dict[bytes, None] = {}  # digests of credentials that passed, insertion order

    @property
    def config(self) -> WebConfig:
        self._maybe_reload()
        return self._config

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (fixed at start)."""
        return self._config.tls is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        self._maybe_reload()
        return self._context

    def authorized(self, header: str | None) -> bool:
        """Whether a request with this Authorization header may proceed."""
        users = dict(self.config.users)
        if not users:
            return True
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = users.get(user)
        digest = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        with self._lock:
            if hashed is not None and digest in self._ok:
                return True
        try:
            ok = _checkpw(password, hashed or _DUMMY_HASH) and hashed is not None
        except ValueError:  # e.g. a password over bcrypt's 72 bytes
            ok = False
        if ok:
            with self._lock:
                self._ok[digest] = None
                while len(self._ok) > AUTH_CACHE_SIZE:
                    del self._ok[next(iter(self._ok))]
        return ok

    def _stat(self) -> tuple:
        stamps: list[tuple[str, int | None, int | None, int | None]] = []
        for f in (self.path, *self._config.files):
            try:
                st = os.stat(f)
                stamps.append((f, st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append((f, None, None, None))
        return tuple(stamps)

    def _maybe_reload(self) -> None:
        now = self._clock()
        with self._lock:
            if now - self._checked < RECHECK_SECONDS:
                return
            self._checked = now
            stamps = self._stat()
            if stamps == self._stamps or stamps == self._failed_stamps:
                return
            try:
                config = load_web_config(self.path)
                if (config.tls is None) != (self._config.tls is None):
                    raise WebConfigError("tls_server_config: turning TLS on or off needs a restart")
                context = ssl_context(config.tls) if config.tls else None
            except ConfigError as e:
                self._failed_stamps = stamps
                log.error(
                    "web config changed but is invalid; keeping the previous settings",
                    extra={"file": self.path, "err": str(e).replace("\n", "; ")},
                )
                return
            self._config, self._context = config, context
            self._stamps = self._stat()
            self._failed_stamps = None
            self._ok.clear()
            log.info("web config reloaded", extra={"file": self.path, "web": config.describe()})


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    assert bcrypt is not None  # validation refuses users without it
    return bcrypt.checkpw(password, hashed)
