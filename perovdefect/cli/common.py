"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json
import math
from typing import Any

import click


def _finite(obj: Any) -> Any:
    """NaN and infinities become null: JSON has no NaN, and a reader must not meet one."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def echo_json(obj: Any) -> None:
    """Print a JSON document to stdout (numpy values converted, NaN/inf as null)."""
    from perovdefect.structures.record import _jsonable
    click.echo(json.dumps(_finite(_jsonable(obj)), indent=1, allow_nan=False))
