"""One serialisation mechanism for every result document: pydantic models.

Every result type (ElectronicStructure, DefectLevels, PhotonStats and their parts, formation
energies, CC diagrams, ...) subclasses `Document`. A document is validated when it is built and
when it is loaded (types, required fields, no unknown fields), is written to JSON atomically
(a crash never leaves half a file; NaN/inf become null, never a bare NaN) and says which schema
version it is. Documents written by perovdefect 0.1 (schema_version 1) are upgraded on load where
the class knows how (`_upgrade`), or refused with a message saying how to regenerate them.

Why pydantic rather than monty's MSONable: the campaign YAML is already validated by pydantic,
and validating documents on load (a missing or mistyped field in a result JSON is a clear
ParseError, not a KeyError later) comes for free.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from perovdefect.errors import ParseError

D = TypeVar("D", bound="Document")


class Part(BaseModel):
    """A typed piece of a document (a level, a fit, an in-gap state). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null", validate_assignment=True,
                              arbitrary_types_allowed=False, protected_namespaces=())


class Document(Part):
    """A top-level result document with a schema version, JSON round trip and atomic writes."""

    #: Current schema version of the subclass; documents of other versions go through _upgrade.
    SCHEMA_VERSION: ClassVar[int] = 2
    #: What to tell a user whose document cannot be upgraded.
    REGENERATE_HINT: ClassVar[str] = "regenerate it with this perovdefect"
    #: True where perovdefect 0.1 wrote this document without a schema_version: such a dict
    #: goes through _upgrade (with schema_version absent) instead of passing as current.
    UNVERSIONED_IS_LEGACY: ClassVar[bool] = False

    schema_version: int = 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (NaN/inf as None)."""
        return json.loads(self.model_dump_json())

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        """JSON text; written atomically to `path` when given (tmp file + rename)."""
        text = self.model_dump_json(indent=indent)
        if path is not None:
            write_atomic(path, text)
        return text

    @classmethod
    def _upgrade(cls, data: dict[str, Any], source: str) -> dict[str, Any]:
        """Convert an older schema's dict to the current one; default: refuse."""
        raise ParseError(f"{source}: {cls.__name__} schema version "
                         f"{data.get('schema_version')!r} cannot be read by this perovdefect "
                         f"(reads {cls.SCHEMA_VERSION}); {cls.REGENERATE_HINT}")

    @classmethod
    def from_dict(cls: type[D], data: Any, source: str = "document") -> D:
        """Validate a dict (upgrading old schema versions); every problem is one ParseError."""
        if not isinstance(data, dict):
            raise ParseError(f"{source}: a {cls.__name__} must be a JSON object, got "
                             f"{type(data).__name__}")
        default = None if cls.UNVERSIONED_IS_LEGACY else cls.SCHEMA_VERSION
        if data.get("schema_version", default) != cls.SCHEMA_VERSION:
            data = cls._upgrade(dict(data), source)
            data["schema_version"] = cls.SCHEMA_VERSION
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ParseError(f"{source}: invalid {cls.__name__}: "
                             f"{validation_summary(exc)}") from None

    @classmethod
    def from_json(cls: type[D], path: str | Path) -> D:
        """Load and validate a document file; unreadable or invalid files raise ParseError."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ParseError(f"{path}: not a readable {cls.__name__} JSON: {exc}") from None
        return cls.from_dict(data, str(path))


def validation_summary(exc: ValidationError, limit: int = 4) -> str:
    """pydantic's errors in one line: 'field.sub: message; ...'."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
             for e in exc.errors()[:limit]]
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to path through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
