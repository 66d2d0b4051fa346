"""Run directories that survive crashes: a step is finished when RUN_DIR/result.json exists and
RUN_DIR/step.json (written last, atomically) holds the hash of its structure + protocol + code
+ code settings. A finished step is never recomputed; every backend shares this
(Backend.execute)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.documents import write_atomic
from perovdefect.errors import ParseError
from perovdefect.structures.record import StructureRecord

MARKER = "step.json"


def step_digest(record: StructureRecord, protocol: Protocol, code: str,
                settings: dict[str, Any] | None = None) -> str:
    """Identity of a step: structure + protocol + code + the code's settings."""
    payload = json.dumps({"symbols": record.atoms.get_chemical_symbols(),
                          "positions": record.atoms.positions.round(6).tolist(),
                          "cell": record.atoms.cell.array.round(6).tolist(),
                          "protocol": protocol.as_dict(), "code": code,
                          "settings": settings or {}}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def finished(run_dir: str | Path, digest: str) -> ElectronicStructure | None:
    """The stored result if this exact step already finished in run_dir, else None."""
    run_dir = Path(run_dir)
    marker = run_dir / MARKER
    if marker.is_file() and (run_dir / "result.json").is_file():
        try:
            if json.loads(marker.read_text()).get("hash") == digest:
                return ElectronicStructure.from_json(run_dir / "result.json")
        except (json.JSONDecodeError, OSError, ParseError):
            return None
    return None


def mark_finished(run_dir: str | Path, digest: str, doc: ElectronicStructure,
                  info: dict | None = None) -> None:
    """Write result.json, then the marker (atomically) as the last act of a step."""
    run_dir = Path(run_dir)
    doc.to_json(run_dir / "result.json")
    write_atomic(run_dir / MARKER, json.dumps({"hash": digest, **(info or {})}, default=str))
