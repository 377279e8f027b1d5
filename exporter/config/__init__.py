"""Configuration: YAML in, validated frozen values out (see loader.py for the rules)."""

from exporter.config.loader import ConfigError, load_config, parse_config
from exporter.config.model import (
    AgentFilter,
    Config,
    Secret,
    ServerConfig,
    Staffing,
    StaffingRule,
    Window,
)

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
