"""Shared fixtures: the ../shared/data reference folder (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PEROVDEFECT_SHARED", REPO.parent / "shared")) / "data"


def pytest_configure(config):
    """Under pytest-xdist (pyproject's addopts) each worker runs its GPAW steps on one MPI rank:
    the workers share the cores instead of oversubscribing them with busy-waiting ranks. A
    test that checks the MPI path sets PEROVDEFECT_GPAW_NPROCS itself."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ.setdefault("PEROVDEFECT_GPAW_NPROCS", "1")


def pytest_collection_modifyitems(config, items):
    """Files with slow (real DFT) tests first, in their collection order: pytest-xdist hands
    out whole files in this order, so the long ones start at once and the quick ones fill the
    workers at the end instead of one long file running alone (a stable sort: each file keeps
    its own test order)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference data folder {SHARED} is absent (../shared/data beside the repo)")
    return SHARED


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run `perovdefect ARGS` in a subprocess (the installed console script's module)."""
    import subprocess
    import sys
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "perovdefect", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=900)


def luminescence_json(text: str) -> dict:
    """`perovdefect luminescence ... --json` output: it must be the LuminescenceResult document
    itself (validated here); returned with its summary's derived keys (zpl_eV, ...) merged in."""
    import json

    from perovdefect.optics.run import LuminescenceResult
    doc = LuminescenceResult.from_dict(json.loads(text), "luminescence --json")
    return {**json.loads(text), **doc.summary()}


def html_text(html: str) -> str:
    """The text a reader sees in a report's HTML: the data between the tags, the style sheet
    left out (attributes, e.g. the figures' base64 data, are not text)."""
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts: list[str] = []
            self._skip = False

        def handle_starttag(self, tag, attrs):
            self._skip = tag == "style"

        def handle_endtag(self, tag):
            self._skip = False

        def handle_data(self, data):
            if not self._skip:
                self.parts.append(data)

    p = _Text()
    p.feed(html)
    return " ".join(p.parts)
