"""Configuration: YAML in, validated frozen values out (see loader.py for the rules).

The value types (`model.py`) import without PyYAML, so the math can use them cheaply; the loader
(and with it PyYAML) is imported only when `load_config`, `parse_config` or `ConfigError` is first
asked for from this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter.config.model import (
    AgentFilter,
    Config,
    Secret,
    ServerConfig,
    Staffing,
    StaffingRule,
    Window,
)

if TYPE_CHECKING:
    from exporter.config.errors import ConfigError
    from exporter.config.loader import load_config, parse_config

_LAZY = {
    "ConfigError": "exporter.config.errors",
    "load_config": "exporter.config.loader",
    "parse_config": "exporter.config.loader",
}

__all__ = [
    "AgentFilter",
    "Config",
    "ConfigError",
    "Secret",
    "ServerConfig",
    "Staffing",
    "StaffingRule",
    "Window",
    "load_config",
    "parse_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
