"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(obj: Any) -> None:
    """Print a JSON document to stdout (numpy values converted)."""
    from perovdefect.structures.record import _jsonable
    click.echo(json.dumps(_jsonable(obj), indent=1))
