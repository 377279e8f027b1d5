"""The front page and the manual: README.md stays a front page, every YAML block in README.md
and docs/*.md parses, every exporter configuration among them validates through the real
loader, config.example.yaml passes check-config, and relative links lead somewhere.

A YAML block is taken for an exporter configuration unless the line before its fence says
otherwise: `<!-- yaml: KIND -->`, KIND one of NOT_CONFIG_KINDS. A configuration block without
`servers` (a fragment, e.g. a staffing section) is validated with one minimal server added.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from exporter.cli import is_secret_file_problem
from exporter.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLE = REPO / "config.example.yaml"
NOT_CONFIG_KINDS = {
    "prometheus",
    "alertmanager",
    "kubernetes",
    "kustomize",
    "grafana",
    "web-config",
}
MARKER = re.compile(r"^\s*<!-- yaml: ([a-z-]+) -->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
ENVIRON = {"ROCKETCHAT_USER_ID": "docs-user", "ROCKETCHAT_AUTH_TOKEN": "docs-token"}
MINIMAL_SERVER = {
    "name": "docs",
    "url": "https://chat.example.com",
    "user_id": "u",
    "auth_token": "t",
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    kind: str  # "config" or a NOT_CONFIG_KINDS entry
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, language = m.group(1), m.group(2)
        start = i
        i += 1
        body = []
        while i < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[i]):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        assert i < len(lines), f"{page.name}:{start + 1}: unterminated code block"
        i += 1
        previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = MARKER.match(previous)
        kind = marker.group(1) if marker else "config"
        found.append(Block(page, start + 1, language, kind, "\n".join(body) + "\n"))
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
YAML_BLOCKS = [b for b in ALL_BLOCKS if b.language in ("yaml", "yml")]
CONFIG_BLOCKS = [b for b in YAML_BLOCKS if b.kind == "config"]


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines: move detail into docs/"
    text = "\n".join(lines)
    # The requirements come before the commands.
    assert text.index("Enterprise") < text.index("## Quick start")
    assert text.index("view-livechat-manager") < text.index("## Quick start")
    assert "rocketchat-omnichannel-exporter demo" in text and "python -m pytest" in text


def test_pages_have_blocks_and_markers_are_known():
    assert len(CONFIG_BLOCKS) >= 3 and len(YAML_BLOCKS) > len(CONFIG_BLOCKS)
    for block in ALL_BLOCKS:
        assert block.kind == "config" or block.kind in NOT_CONFIG_KINDS, block.id
        assert block.kind == "config" or block.language in ("yaml", "yml"), (
            f"{block.id}: a yaml marker before a {block.language or 'plain'} block"
        )


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.id)
def test_every_yaml_block_parses(block):
    try:
        docs = list(yaml.safe_load_all(block.text))
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.id}: not YAML: {exc}")
    assert docs and all(isinstance(d, dict) for d in docs), f"{block.id}: not a YAML mapping"


@pytest.mark.parametrize("block", CONFIG_BLOCKS, ids=lambda b: b.id)
def test_every_config_block_validates(block, tmp_path):
    """Through the real loader (file, YAML dialect, ${VAR}); only secret files that cannot
    exist here (e.g. /run/secrets/rc-token) are excused, as check-config --skip-secrets does."""
    data = yaml.safe_load(block.text)
    text = block.text
    if "servers" not in data:  # a fragment: complete it with one server
        text += yaml.safe_dump({"servers": [MINIMAL_SERVER]})
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(str(path), environ=ENVIRON)
    except ConfigError as exc:
        errors = [e for e in exc.errors if not is_secret_file_problem(e)]
        assert not errors, f"{block.id}: not a valid exporter configuration:\n" + "\n".join(errors)


def test_readme_shows_config_example_yaml_as_it_is():
    texts = [b.text for b in CONFIG_BLOCKS if b.page.name == "README.md"]
    assert EXAMPLE.read_text(encoding="utf-8") in texts


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60
    )


def test_config_example_passes_check_config_once_the_secret_files_exist(tmp_path):
    config = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE, config)
    before = run_cli("check-config", "--config.file", str(config))
    assert before.returncode == 2 and "secrets/user-id" in before.stderr
    skipped = run_cli("check-config", "--skip-secrets", "--config.file", str(config))
    assert skipped.returncode == 0, skipped.stderr
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "user-id").write_text("the-user-id\n")
    (tmp_path / "secrets" / "auth-token").write_text("the-token\n")
    filled = run_cli("check-config", "--config.file", str(config))
    assert filled.returncode == 0, filled.stderr
    assert "server main: https://chat.example.com" in filled.stdout
    assert "the-token" not in filled.stdout + filled.stderr


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files_and_headings(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: no heading #{anchor} in {file.name}"


def anchors(page: Path) -> set[str]:
    """GitHub's ids for the markdown headings of `page`."""
    ids = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            ids.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return ids
