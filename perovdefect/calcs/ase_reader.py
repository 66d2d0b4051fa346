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
    # ASE's single-point calculator keeps one SinglePointKPoint per (spin, k); its
    # get_ibz_k_points() is None for some OUTCARs (seen here), so read the list itself
    kpts = list(getattr(calc, "kpts", None) or [])
    if not kpts:
        raise ValueError("no eigenvalues in the file")
    # kp.k is an index in the OUTCAR reader but the k-point's coordinates in the pw.x reader:
    # number k-points by order of appearance within each spin instead
    seen: dict[int, int] = {}
    index = []
    for kp in kpts:
        index.append(seen.get(kp.s, 0))
        seen[kp.s] = index[-1] + 1
    nspins = 1 + max(kp.s for kp in kpts)
    nk = max(seen.values())
    nb = min(len(kp.eps_n) for kp in kpts)
    eig = np.zeros((nspins, nk, nb))
    occ = np.zeros((nspins, nk, nb))
    weights = np.zeros(nk)
    for kp, k in zip(kpts, index):
        eig[kp.s, k] = np.asarray(kp.eps_n)[:nb]
        f = getattr(kp, "f_n", None)
        f = np.asarray(f) if f is not None else np.zeros(0)
        occ[kp.s, k] = f[:nb] if f.size >= nb else np.nan  # pw.x: often none printed
        weights[k] = kp.weight
    if np.isnan(occ).any():
        occ = None  # pw.x prints occupations only with verbosity='high'
    return atoms, eig, occ, weights / weights.sum(), calc.get_fermi_level()
