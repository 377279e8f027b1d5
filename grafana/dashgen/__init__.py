"""Dashboard definitions for grafana/generate.py: a toolkit plus one module per dashboard."""
