"""Shared fixtures: the ../shared/data reference folder (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PEROVDEFECT_SHARED", REPO.parent / "shared")) / "data"


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
