"""Prometheus exporter for Rocket.Chat Omnichannel agent availability."""

__version__ = "0.1.0"
