"""Supercells by minimum periodic-image distance or atom-count target, with a size limit that is
checked before any search starts.

Units: lengths in Angstrom (A), volumes in A^3, memory in bytes.
"""

from __future__ import annotations

import itertools
import math
import numpy as np
from ase import Atoms
from ase.build import find_optimal_cell_shape, make_supercell
from ase.geometry import minkowski_reduce

from perovdefect.errors import StructureError
from perovdefect.structures.record import StructureRecord

#: Default cap on the supercell size (atoms). DFT cost grows as N^3: 5000 atoms is already far
#: beyond hybrid-functional reach, and every request above it is refused before any search.
DEFAULT_MAX_ATOMS = 5000
#: Rough memory (bytes) to hold one site as a pymatgen Structure (measured with tracemalloc on
#: pymatgen 2026: ~400 B/site); used only to tell the user what a refused request would cost.
BYTES_PER_SITE = 400
#: sqrt(2): the densest lattice packing of spheres (fcc, Gauss 1831) gives every lattice point a
#: volume of at least d^3 / sqrt(2) when no two points are closer than d.
_FCC_PACKING = math.sqrt(2.0)
#: Cap on candidate x short-vector checks in the exact search; past it the search stops and the
#: (always valid) k x k x k supercell of the reduced cell is used instead.
SEARCH_BUDGET = 20_000_000


def image_distance(cell: np.ndarray) -> float:
    """Shortest distance (A) between a point and its periodic images: min |n1 a1 + n2 a2 + n3 a3|.

    The cell is Minkowski reduced first (ASE), after which |n_i| <= 1 is sufficient.
    """
    reduced, _ = minkowski_reduce(np.asarray(cell, dtype=float))
    best = np.inf
    for n in itertools.product((-1, 0, 1), repeat=3):
        if n == (0, 0, 0):
            continue
        best = min(best, float(np.linalg.norm(np.asarray(n) @ reduced)))
    return best


def check_positive_finite(value: float, what: str) -> float:
    """`value` as a float; StructureError naming `what` unless it is finite and > 0."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise StructureError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise StructureError(f"{what} must be a finite number > 0, got {value!r}")
    return x


def check_count(value: int, what: str) -> int:
    """`value` as an int; StructureError naming `what` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StructureError(f"{what} must be a whole number, got {value!r}")
    if value < 1:
        raise StructureError(f"{what} must be >= 1, got {value}")
    return int(value)


def min_cells_for_distance(cell: np.ndarray, min_image_distance_A: float) -> int:
    """Exact lower bound on the number of unit cells of any supercell whose periodic images are
    at least `min_image_distance_A` apart: ceil(d^3 / (sqrt(2) V_cell)), from the densest lattice
    packing; 1 when the cell itself is large enough. O(1): safe for any d."""
    d = min_image_distance_A
    if image_distance(cell) >= d:
        return 1
    volume = abs(float(np.linalg.det(cell)))
    return max(2, math.ceil(d**3 / (_FCC_PACKING * volume) - 1e-9))


def _refuse_size(n_atoms: int, max_atoms: int, request: str, why: str) -> None:
    """Raise StructureError for a request implying `n_atoms` > `max_atoms`."""
    gib = n_atoms * BYTES_PER_SITE / 2**30
    mem = f"{gib:.3g} GiB" if gib >= 0.1 else f"{n_atoms * BYTES_PER_SITE / 2**20:.3g} MiB"
    raise StructureError(
        f"{request} needs at least {n_atoms:,} atoms ({why}; ~{mem} just to hold the "
        f"structure), above the limit of {max_atoms:,} atoms (`max_atoms`)")


def check_size(atoms: Atoms, min_image_distance_A: float | None = None,
               target_atoms: int | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> int:
    """Validate a size request before any search; returns the lower bound on the atom count.

    Raises StructureError for a non-finite / non-positive distance, a target below 1, or a request
    whose atom count (lower bound for a distance, the rounded target for a count) exceeds
    `max_atoms`. Costs O(1), so a 1e4 A request is refused at once.
    """
    max_atoms = check_count(max_atoms, "max_atoms")
    if (min_image_distance_A is None) == (target_atoms is None):
        raise StructureError("give exactly one of min_image_distance_A or target_atoms")
    if min_image_distance_A is not None:
        d = check_positive_finite(min_image_distance_A, "min_image_distance_A")
        n_atoms = min_cells_for_distance(atoms.cell.array, d) * len(atoms)
        if n_atoms > max_atoms:
            _refuse_size(n_atoms, max_atoms, f"min image distance {d:g} A",
                         "densest-packing bound: volume >= d^3/sqrt(2) per image")
        return n_atoms
    n_target = check_count(target_atoms, "target_atoms")
    n_atoms = max(1, round(n_target / len(atoms))) * len(atoms)
    if n_atoms > max_atoms:
        _refuse_size(n_atoms, max_atoms, f"target of {n_target} atoms",
                     f"{len(atoms)} atoms per unit cell")
    return n_atoms


# --- exact search --------------------------------------------------------------------------------
# Hand-written because neither library answers this question. pymatgen's
# CubicSupercellTransformation grows a cube target in 0.1 A steps and materialises a full
# superstructure at every step (minutes and tens of GB for large requests), optimises an
# inscribed-cube criterion rather than the image distance, and returns up to ~1.5x more atoms
# than needed (Cs4PbBr6 at 14 A: 264 atoms where 198 suffice; CsPbBr3-cubic at 30 A: 625 where
# 455 suffice); ASE's find_optimal_cell_shape optimises the shape for a given cell count, not the
# count for a given distance. Here every sublattice of index n (Hermite normal form, lower
# triangular H: supercell rows = H @ reduced cell) is checked for n from the packing lower bound
# upwards, in integer arithmetic, and the first n with a sublattice whose shortest vector is >= d
# wins (largest image distance among them). The work is capped (SEARCH_BUDGET); past the cap the
# answer is the best of s * (exact answer for d / s), s = 2..k, which is always valid.

_CHUNK = 1_000_000  # candidate x vector elements per numpy block (~30 MB of temporaries)


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def _short_vectors(reduced: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer vectors m (one of each +-pair) with 0 < |m @ reduced| < radius (A), sorted by
    length. Bounds per component are exact: |m_i| = |(m @ reduced) . b_i*| <= radius |b_i*| with
    b_i* the reciprocal vectors (columns of inv(reduced))."""
    recip = np.linalg.inv(reduced)
    bound = np.floor(radius * np.linalg.norm(recip, axis=0) + 1e-9).astype(int)
    axes = [np.arange(-b, b + 1) for b in bound]
    m = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    first = np.where(m[:, 0] != 0, m[:, 0], np.where(m[:, 1] != 0, m[:, 1], m[:, 2]))
    m = m[first > 0]
    norms = np.linalg.norm(m @ reduced, axis=1)
    keep = norms < radius
    order = np.argsort(norms[keep], kind="stable")
    return m[keep][order], norms[keep][order]


def _first_member(m: np.ndarray, norms: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Length (A) of the shortest listed vector m inside each lattice H = [[a,0,0],[b,c,0],
    [dd,e,f]] (H: array (K, 3, 3) of HNFs sharing a, c, f; inf when none): m is in the lattice
    iff m @ inv(H) is integer, solved here by back-substitution in integers."""
    a, c, f = int(H[0, 0, 0]), int(H[0, 1, 1]), int(H[0, 2, 2])
    b, dd, e = H[:, 1, 0], H[:, 2, 0], H[:, 2, 1]
    ok = m[:, 2] % f == 0
    m, norms = m[ok], norms[ok]
    out = np.full(len(H), np.inf)
    if len(m) == 0:
        return out
    step = max(1, _CHUNK // len(m))
    for lo in range(0, len(H), step):
        sl = slice(lo, lo + step)
        k = m[None, :, 2] // f
        x2 = m[None, :, 1] - k * e[sl, None]
        member = x2 % c == 0
        x1 = m[None, :, 0] - (x2 // c) * b[sl, None] - k * dd[sl, None]
        member &= x1 % a == 0
        out[sl] = np.where(member, norms[None, :], np.inf).min(axis=1)
    return out


def _hnf_block(a: int, b: np.ndarray, c: int, f: int) -> np.ndarray:
    """All HNFs [[a,0,0],[b,c,0],[dd,e,f]] for the given b values, 0 <= dd < a, 0 <= e < c."""
    grid = np.array(list(itertools.product(b, range(a), range(c))), dtype=int).reshape(-1, 3)
    H = np.zeros((len(grid), 3, 3), dtype=int)
    H[:, 0, 0], H[:, 1, 1], H[:, 2, 2] = a, c, f
    H[:, 1, 0], H[:, 2, 0], H[:, 2, 1] = grid[:, 0], grid[:, 1], grid[:, 2]
    return H


def _valid_of_index(n: int, reduced: np.ndarray, d: float, m: np.ndarray, norms: np.ndarray,
                    budget: int) -> tuple[list[np.ndarray], int]:
    """(HNFs of index n whose shortest vector is >= d (A), work done); stops once `work`
    (candidate x short-vector checks) exceeds `budget`. m, norms: vectors shorter than d."""
    len0 = np.linalg.norm(reduced[0])
    area01 = np.linalg.norm(np.cross(reduced[0], reduced[1]))
    planar = m[:, 2] == 0
    valid: list[np.ndarray] = []
    work = n  # the divisor scans below, so that even a fully pruned index counts
    for a in _divisors(n):
        if a * len0 < d:  # (a, 0, 0) itself is a lattice vector
            continue
        for c in _divisors(n // a):
            # the (1,2) plane of the sublattice is a 2D lattice of area a c |a1 x a2|; with all
            # its vectors >= d it needs at least the hexagonal area sqrt(3)/2 d^2
            if a * c * area01 < math.sqrt(3) / 2 * d**2 * (1 - 1e-9):
                continue
            f = n // (a * c)
            plane = _hnf_block(a, np.arange(a), c, 1)[::a * c]  # dd = e = 0: one per b
            keep = _first_member(m[planar], norms[planar], plane) >= d
            work += a * int(planar.sum())
            if not keep.any():
                continue
            H = _hnf_block(a, np.flatnonzero(keep), c, f)
            work += len(H) * int((~planar).sum())
            if work > budget:
                return valid, work
            valid += list(H[_first_member(m[~planar], norms[~planar], H) >= d])
    return valid, work


def _search(reduced: np.ndarray, d: float, n_lo: int, n_hi: int,
            budget: int) -> tuple[np.ndarray | None, bool]:
    """(best HNF of the smallest index in [n_lo, n_hi] with image distance >= d (A), or None;
    whether the budget ran out). Among equals the largest image distance wins."""
    m, norms = _short_vectors(reduced, d)
    work = 0
    for n in range(n_lo, n_hi + 1):
        valid, w = _valid_of_index(n, reduced, d, m, norms, budget - work)
        work += w
        if valid:
            m2, norms2 = _short_vectors(reduced, 1.5 * d)  # rank by image distance, up to 1.5 d
            groups: dict[tuple[int, int], list[np.ndarray]] = {}
            for h in valid:  # _first_member wants HNFs sharing a, c (and so f)
                groups.setdefault((int(h[0, 0]), int(h[1, 1])), []).append(h)
            scored = [(float(img), i, h) for hs in groups.values() for i, (img, h) in
                      enumerate(zip(_first_member(m2, norms2, np.array(hs)), hs))]
            return max(scored, key=lambda t: (t[0], -t[1]))[2], False
        if work > budget:
            return None, True
    return None, False


def minimal_supercell_matrix(cell: np.ndarray, min_image_distance_A: float, max_cells: int,
                             budget: int = SEARCH_BUDGET) -> np.ndarray:
    """Integer P (supercell = P @ cell) with the fewest unit cells whose periodic images are all
    >= min_image_distance_A (A) apart; among those the largest image distance. The result is
    Minkowski reduced (most compact shape) with det P > 0. Past `budget` the best scaled answer
    s * P(d / s) is used (valid, possibly not minimal).

    Raises StructureError when more than `max_cells` cells would be needed.
    """
    d = min_image_distance_A
    cell = np.asarray(cell, dtype=float)
    reduced, op = minkowski_reduce(cell)  # reduced = op @ cell
    k = math.ceil(d / image_distance(cell) - 1e-12)  # k x k x k always works
    n_lo = min_cells_for_distance(cell, d)
    H, exhausted = _search(reduced, d, n_lo, min(k**3, max_cells), budget)
    if H is None:
        options = [k * np.eye(3, dtype=int)]
        for s in range(2, k) if exhausted else ():
            try:
                options.append(s * minimal_supercell_matrix(reduced, d / s,
                                                            max(1, max_cells // s**3), budget))
            except StructureError:  # more than max_cells at this s
                continue
        H = min(options, key=lambda h: (round(abs(np.linalg.det(h))),
                                        -image_distance(h @ reduced)))
    if round(abs(np.linalg.det(H))) > max_cells:
        stopped = " (search budget reached)" if exhausted else ""
        raise StructureError(f"no supercell with image distance >= {d:g} A found within "
                             f"{max_cells} unit cells{stopped}; raise `max_atoms`")
    P = H @ op
    _, op2 = minkowski_reduce(P @ cell)
    P = np.asarray(op2 @ P, dtype=int)
    return P if np.linalg.det(P) > 0 else -P


def supercell_matrix(atoms: Atoms, min_image_distance_A: float | None = None,
                     target_atoms: int | None = None,
                     max_atoms: int = DEFAULT_MAX_ATOMS) -> np.ndarray:
    """Integer transformation matrix P (supercell = P @ cell); the size is checked first.

    min_image_distance_A (A): the exact search above (fewest atoms with every periodic image at
    least this far). target_atoms: ASE's find_optimal_cell_shape for round(target / atoms per
    cell) cells, closest to simple cubic. Requests above `max_atoms` are refused before searching.
    """
    check_size(atoms, min_image_distance_A, target_atoms, max_atoms)
    if min_image_distance_A is not None:
        if image_distance(atoms.cell.array) >= min_image_distance_A:
            return np.eye(3, dtype=int)
        return minimal_supercell_matrix(atoms.cell.array, float(min_image_distance_A),
                                        max_atoms // len(atoms))
    n_cells = max(1, round(int(target_atoms) / len(atoms)))
    if n_cells == 1:
        return np.eye(3, dtype=int)
    return np.asarray(find_optimal_cell_shape(atoms.cell, n_cells, "sc", verbose=False), dtype=int)


def build_supercell(record: StructureRecord, min_image_distance_A: float | None = None,
                    target_atoms: int | None = None,
                    max_atoms: int = DEFAULT_MAX_ATOMS) -> StructureRecord:
    """Supercell of a crystal record; metadata gains the matrix, the number of unit cells and the
    image distance (A) (`supercell_metadata`). Size requests above `max_atoms` atoms are refused
    before any search."""
    if record.is_cluster:
        raise StructureError("supercells need a periodic structure, got a cluster")
    P = supercell_matrix(record.atoms, min_image_distance_A, target_atoms, max_atoms)
    atoms = make_supercell(record.atoms, P, wrap=True) if not np.array_equal(
        P, np.eye(3)) else record.atoms.copy()
    return StructureRecord(atoms, supercell_metadata(record.metadata, P, atoms))


def supercell_metadata(meta: dict, P: np.ndarray, atoms: Atoms) -> dict:
    """Metadata of the supercell `atoms` = P @ (cell of a record with metadata `meta`): the matrix,
    the number of unit cells, the image distance (A) and the scaled electron counts and Z. A
    record whose metadata names its `cell` (e.g. "primitive") gives `supercell_of`, the cell
    that P and n_unit_cells refer to."""
    P = np.asarray(P, dtype=int)
    factor = int(round(abs(np.linalg.det(P))))
    meta = dict(meta)
    cell = meta.pop("cell", None)
    if cell is not None:
        meta["supercell_of"] = cell
    meta.update({"kind": "supercell", "supercell_matrix": P.tolist(), "n_unit_cells": factor,
                 "image_distance_A": round(image_distance(atoms.cell.array), 4),
                 "electrons_total": meta["electrons_total"] * factor,
                 "valence_electrons": meta["valence_electrons"] * factor,
                 "Z": meta.get("Z", 0) * factor})
    return meta
