"""`parse(PATH)`: find and parse whatever calculation output PATH is (file or run directory)."""

from __future__ import annotations

from pathlib import Path

from perovdefect.errors import ParseError
from perovdefect.parsers.document import ElectronicStructure

_CANDIDATES = ("result.json", "vasprun.xml", "vasprun.xml.gz", "OUTCAR", "OUTCAR.gz",
               "pw.out", "espresso.pwo", "data-file-schema.xml")


def parse(path: str | Path, parse_projections: bool = False) -> ElectronicStructure:
    """Parse a vasprun.xml(.gz), OUTCAR(.gz), pw.x output or its data-file-schema.xml, a GPAW
    result.json (written by perovdefect's GPAW runner) or a directory holding one of them."""
    path = Path(path)
    if not path.exists():
        raise ParseError(f"{path}: no such file or directory")
    if path.is_dir():
        for name in _CANDIDATES:
            if (path / name).is_file():
                return parse(path / name, parse_projections)
        raise ParseError(f"{path}: no calculation output found (looked for "
                         f"{', '.join(_CANDIDATES)})")
    name = path.name.lower()
    if name.startswith("vasprun") and (name.endswith(".xml") or name.endswith(".xml.gz")):
        from perovdefect.parsers.vasp import parse_vasprun
        return parse_vasprun(path, parse_projections)
    if name.startswith("outcar"):
        from perovdefect.parsers.vasp import parse_outcar
        return parse_outcar(path)
    if name.endswith(".json"):
        return ElectronicStructure.from_json(path)
    head = path.read_bytes()[:4096].decode(errors="replace")
    if "Program PWSCF" in head:
        from perovdefect.parsers.qe import parse_pw_output
        return parse_pw_output(path)
    if "<qes:espresso" in head or name == "data-file-schema.xml":
        from perovdefect.parsers.qe import parse_qe_xml
        return parse_qe_xml(path)
    if head.lstrip().startswith("<?xml") and "<modeling>" in head:
        from perovdefect.parsers.vasp import parse_vasprun
        return parse_vasprun(path, parse_projections)
    raise ParseError(f"{path}: unrecognised calculation output (expected vasprun.xml, OUTCAR, "
                     "pw.x output or a perovdefect result.json)")
