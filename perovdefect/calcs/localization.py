"""Band localisation from real-space wave functions: atom-resolved weights and their inverse
participation ratio (IPR). Code-independent, so GPAW grids and VASP PROCAR projections give the
same kind of number: IPR = sum_a w_a^2 / (sum_a w_a)^2, 1 for a state on one atom, 1/N_atoms
for a state spread evenly over N atoms."""

from __future__ import annotations

import numpy as np


def atom_labels_for_grid(positions_A: np.ndarray, cell_A: np.ndarray, shape: tuple[int, ...],
                         cutoff_A: float = 3.5, periodic: bool = False) -> np.ndarray:
    """For each grid point (flattened), the index of the nearest atom within `cutoff_A`, else -1.

    Grid points are r = (i/n0, j/n1, k/n2) @ cell (GPAW's zero-padded grid convention). For a
    periodic cell the distance is to the nearest periodic image (fractional differences wrapped
    to [-1/2, 1/2), exact for the near-orthogonal perovskite supercells)."""
    grids = [np.arange(n) / n for n in shape]
    frac = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3)
    cell = np.asarray(cell_A)
    r = frac @ cell
    atom_frac = np.asarray(positions_A) @ np.linalg.inv(cell)
    best = np.full(len(r), np.inf)
    label = np.full(len(r), -1, dtype=int)
    for a, p in enumerate(np.asarray(positions_A)):
        if periodic:
            df = frac - atom_frac[a]
            d = np.linalg.norm((df - np.round(df)) @ cell, axis=1)
        else:
            d = np.linalg.norm(r - p, axis=1)
        closer = (d < best) & (d < cutoff_A)
        best[closer] = d[closer]
        label[closer] = a
    return label


def atom_weights(density: np.ndarray, labels: np.ndarray, n_atoms: int) -> np.ndarray:
    """Fraction of |psi|^2 (already squared, any normalisation) assigned to each atom."""
    flat = np.asarray(density).reshape(-1)
    inside = labels >= 0
    w = np.bincount(labels[inside], weights=flat[inside], minlength=n_atoms)
    total = flat.sum()
    return w / total if total > 0 else w


def ipr(weights: np.ndarray) -> float:
    """Inverse participation ratio of atom weights (dimensionless, 1/N .. 1)."""
    w = np.asarray(weights, dtype=float)
    s = w.sum()
    return float((w**2).sum() / s**2) if s > 0 else 0.0


def character(weights: np.ndarray, symbols: list[str]) -> dict[str, float]:
    """Sum of atom weights per element, e.g. {'Pb': 0.6, 'Br': 0.3, 'Cs': 0.05}."""
    out: dict[str, float] = {}
    for w, s in zip(weights, symbols):
        out[s] = out.get(s, 0.0) + float(w)
    return {k: round(v, 4) for k, v in out.items()}
