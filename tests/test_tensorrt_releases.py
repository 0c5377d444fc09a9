"""The release matrix itself: what tests/tensorrt_releases.py fetches, and the README table that reports it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import tensorrt_releases
from tests.tensorrt_releases import RELEASES, release_plugin_dir

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_lists_exactly_the_matrix():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| TensorRT (bindings wheel) |"):]
    table = table[:table.index("\n\n")]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert tuple(rows) == RELEASES


def test_a_release_pip_cannot_fetch_is_a_skip_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("NLSEG_CACHE_DIR", str(tmp_path))
    reason = release_plugin_dir.__wrapped__("0.0.0.1")
    assert isinstance(reason, str)
    assert reason.startswith("NVIDIA's tensorrt.plugin of TensorRT 0.0.0.1: tensorrt-cu12-bindings==0.0.0.1 could not "
                             "be fetched: pip download failed (")
    assert [p for p in (tmp_path / "tensorrt-bindings").iterdir() if not p.name.startswith(".")] == []


def test_a_fetched_release_is_its_wheels_framework(tmp_path):
    """A fresh fetch (pip download, about 1.3 MB): the Python files of tensorrt_bindings/plugin, nothing native."""
    version = RELEASES[0]
    if isinstance(release_plugin_dir(version), str):
        pytest.skip(release_plugin_dir(version))
    plugin = tensorrt_releases._fetch(version, tmp_path)
    assert plugin == tmp_path / version / "plugin"
    names = sorted(p.name for p in plugin.iterdir())
    assert {"__init__.py", "_lib.py", "_plugin_class.py", "_validate.py"} <= set(names)
    assert all(n.endswith(".py") for n in names)
    assert re.search(r"attrs\[f\.name\] = attr_type_annot\(f\.data\)", (plugin / "_lib.py").read_text())
    assert list(tmp_path.iterdir()) == [tmp_path / version], "the staging folder is gone"
