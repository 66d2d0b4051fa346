"""Parsers: every calculation output becomes one ElectronicStructure document (the backends
know their own files; this layer finds which one to ask)."""

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.parsers.detect import parse

__all__ = ["ElectronicStructure", "parse"]
