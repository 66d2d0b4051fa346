"""Calculations: one Protocol drives the VASP, Quantum ESPRESSO and GPAW backends."""

from perovdefect.calcs.protocol import LADDERS, Protocol, ladder

__all__ = ["LADDERS", "Protocol", "ladder"]
