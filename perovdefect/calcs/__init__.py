"""Calculations: the code-independent Protocol and ladder, the Backend contract and its
registry (entry-point group ``perovdefect.backends``), and the ElectronicStructure document every
backend produces. Only this package names codes."""

from perovdefect.calcs.backend import (Backend, CalculationError, available_backends,
                                       backend_class, get_backend, local_backend)
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import LADDERS, Protocol, ladder

__all__ = ["LADDERS", "Backend", "CalculationError", "ElectronicStructure", "Protocol",
           "available_backends", "backend_class", "get_backend", "ladder", "local_backend"]
