"""`parse(PATH)`: find and parse whatever calculation output PATH is (file or run directory),
by asking each registered backend whether it recognises the file."""

from __future__ import annotations

from pathlib import Path

from perovdefect.calcs.backend import available_backends, backend_for_output, registered_classes
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.errors import ParseError

DOCUMENT = "result.json"


def _candidates() -> list[str]:
    """File names to look for in a run directory: the document, then each backend's."""
    return list(dict.fromkeys([DOCUMENT, *(n for cls in registered_classes()
                                           for n in cls.output_files)]))


def parse(path: str | Path, parse_projections: bool = False) -> ElectronicStructure:
    """Parse a perovdefect result document (JSON) or any output a registered backend recognises
    (vasprun.xml[.gz], OUTCAR[.gz], pw.x output or its data-file-schema.xml, ...), or a
    directory holding one of them."""
    path = Path(path)
    if not path.exists():
        raise ParseError(f"{path}: no such file or directory")
    if path.is_dir():
        names = _candidates()
        for name in names:
            if (path / name).is_file():
                return parse(path / name, parse_projections)
        raise ParseError(f"{path}: no calculation output found (looked for {', '.join(names)})")
    if path.suffix.lower() == ".json":
        return ElectronicStructure.from_json(path)
    backend = backend_for_output(path)
    if backend is None:
        raise ParseError(f"{path}: unrecognised calculation output (known: a perovdefect "
                         f"result.json or the outputs of {', '.join(available_backends())})")
    return backend.parse_file(path, parse_projections)
