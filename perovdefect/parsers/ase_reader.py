"""Eigenvalues from outputs that ASE reads into a single-point calculator (OUTCAR, pw.x)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def read_ase_eigenvalues(path: Path, fmt: str):
    """(atoms, eigenvalues[spin, k, band] eV, raw occupations, k-point weights, Fermi level).

    Raises whatever ASE raises; the callers turn it into a ParseError naming the file."""
    import ase.io
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms = ase.io.read(path, format=fmt, index=-1)
    calc = atoms.calc
    nspins = calc.get_number_of_spins()
    nk = len(calc.get_ibz_k_points())
    eig = np.array([[calc.get_eigenvalues(k, s) for k in range(nk)] for s in range(nspins)])
    try:
        occ = np.array([[calc.get_occupation_numbers(k, s) for k in range(nk)]
                        for s in range(nspins)])
    except Exception:  # pw.x prints occupations only with verbosity='high'
        occ = None
    weights = np.asarray(calc.get_k_point_weights(), dtype=float)
    return atoms, eig, occ, weights, calc.get_fermi_level()
