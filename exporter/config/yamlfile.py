"""YAML file handling: safe loading without base-60 numbers, duplicate keys rejected, and
located error messages that never quote the offending line (it may hold a token).

The only module of the package that imports PyYAML; `exporter.config.model` does not need it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from exporter.config.errors import ConfigError

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# PyYAML's YAML 1.1 resolvers minus the base-60 forms, so that `from: 18:00` stays the string
# "18:00" instead of becoming the number 1080.
_NO_SEXAGESIMAL = {
    _INT_TAG: re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    _FLOAT_TAG: re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
}


class _Loader(yaml.SafeLoader):
    """SafeLoader without base-60 numbers, and with located errors for impossible dates."""

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as e:  # e.g. 2026-13-01: PyYAML raises a bare ValueError
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid date {node.value!r} ({e}; use YYYY-MM-DD)", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, _NO_SEXAGESIMAL.get(tag, rx)) for tag, rx in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: str, text: str) -> Any:
    """Parse one YAML document; raise ConfigError (`path:line:col: ...`) if it is not valid."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_message(path, e)) from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: invalid YAML") from None
    finally:
        loader.dispose()


def _check_duplicate_keys(root: yaml.Node) -> None:
    """PyYAML silently keeps the last of two equal keys; a typo'd copy-paste should not pass."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes, and may even be recursive
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":merge"):
                    stack.append(value_node)
                    continue
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in keys:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                        )
                    keys.add(key_node.value)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_message(path: str, e: yaml.MarkedYAMLError) -> str:
    # Built from the parts, never str(e): that includes a snippet of the offending line, which
    # may hold a token.
    mark = e.problem_mark or e.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    problem = e.problem or e.context or "syntax error"
    if e.context and e.problem and e.context_mark is not None:
        problem += f" ({e.context} at line {e.context_mark.line + 1})"
    if "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    return f"{where}: invalid YAML: {problem}"
