"""Parsers: every calculation output becomes one ElectronicStructure document."""

from perovdefect.parsers.detect import parse
from perovdefect.parsers.document import ElectronicStructure

__all__ = ["ElectronicStructure", "parse"]
