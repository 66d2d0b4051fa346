"""Executed as `[mpiexec -n N] python -m perovdefect.calcs.gpaw_runner RUN_DIR`.

Reads RUN_DIR/job.json (protocol + structure file), runs GPAW and writes RUN_DIR/result.json
(an ElectronicStructure) atomically from rank 0. Kept in its own process so that MPI, GPAW's
memory and a crash stay away from the caller (a FireWorks worker, the CLI or a test).

Ladder steps with GPAW:
- PBE (LCAO or PW): the default GPAW calculator.
- Hybrid (HSE06/PBE0): PW ground state from gpaw.old.calculator.GPAW, then
  gpaw.hybrids.eigenvalues.non_self_consistent_eigenvalues. (Measured here: nsc hybrids on the new
  default calculator shift occupied levels by ~4 eV; the old calculator agrees with QE.)
- SOC: gpaw.spinorbit.soc_eigenstates, on top of the PBE or the hybrid eigenvalues.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _log(msg: str) -> None:
    from gpaw.mpi import world
    if world.rank == 0:
        print(f"[perovdefect {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _calculator(p: dict, atoms, txt: str, old: bool):
    from gpaw.mpi import world
    kw: dict = {"xc": "PBE", "txt": txt, "charge": p["charge"],
                "occupations": {"name": "fermi-dirac", "width": 0.01},
                "convergence": {"density": 1e-5}}
    if p["mode"] == "pw":
        from gpaw import PW
        kw["mode"] = PW(p["cutoff_eV"])
    else:
        kw.update(mode="lcao", basis=p["basis"], h=p["grid_spacing_A"], nbands="nao")
    if p.get("kpoints"):
        kw["kpts"] = tuple(p["kpoints"])
    elif p.get("kpoint_density_inv_A") and any(atoms.pbc):
        kw["kpts"] = {"density": p["kpoint_density_inv_A"], "gamma": True}
    if p["spin_polarized"]:
        kw["spinpol"] = True
    if p["soc"] and world.size > 1:
        # SOC after a spin-polarised run under MPI needs domain (not k-point) parallelisation
        kw["parallel"] = {"kpt": 1, "domain": world.size}
    if p["mode"] == "pw" and p.get("nbands"):
        kw["nbands"] = p["nbands"]
    if old:
        from gpaw.old.calculator import GPAW
    else:
        from gpaw import GPAW
    return GPAW(**kw)


def _fermi_level(calc) -> float | None:
    """Fermi level (eV); None where GPAW reports one per spin (fixed magnetic moment)."""
    try:
        return float(np.mean(calc.get_fermi_level()))
    except Exception:  # fixed-moment runs raise; the level is informational only
        return None


def _vacuum_level(calc, atoms) -> float | None:
    """Electrostatic potential (eV) averaged over the outermost grid planes of a cluster box."""
    if any(atoms.pbc):
        return None
    try:
        v = calc.get_electrostatic_potential()
    except Exception:  # not every calculator flavour offers it; the level is optional
        return None
    faces = np.concatenate([v[0].ravel(), v[-1].ravel(), v[:, 0].ravel(), v[:, -1].ravel(),
                            v[:, :, 0].ravel(), v[:, :, -1].ravel()])
    return float(faces.mean())


def _localization(calc, atoms, eps: np.ndarray, occ: np.ndarray, window: int) -> list[dict]:
    """Atom-resolved weights and IPR of the `window` states on each side of the gap (Gamma)."""
    from perovdefect.calcs.localization import atom_labels_for_grid, atom_weights, character, ipr
    if any(atoms.pbc):
        return []
    out = []
    labels = None
    symbols = atoms.get_chemical_symbols()
    nspins = eps.shape[0]
    for s in range(nspins):
        homo = int(np.nonzero(occ[s, 0] > 0.5)[0].max())
        for n in range(max(0, homo - window + 1), min(eps.shape[2], homo + window + 1)):
            psi = calc.get_pseudo_wave_function(band=n, kpt=0, spin=s, pad=True)
            if labels is None:
                labels = atom_labels_for_grid(atoms.positions, atoms.cell.array, psi.shape)
            w = atom_weights(np.abs(psi) ** 2, labels, len(atoms))
            out.append({"spin": s, "k": 0, "band": n, "energy_eV": float(eps[s, 0, n]),
                        "occupation": float(occ[s, 0, n]), "ipr": round(ipr(w), 4),
                        "character": character(w, symbols),
                        # density farther than the cutoff from every atom (diffuse states)
                        "outside_weight": round(float(1.0 - w.sum()), 4)})
    return out


def run(run_dir: Path) -> None:
    import ase.io
    from gpaw.mpi import world

    job = json.loads((run_dir / "job.json").read_text())
    p = job["protocol"]
    atoms = ase.io.read(run_dir / job["structure"], format="extxyz")
    if p["spin_polarized"]:
        magmoms = np.zeros(len(atoms))
        magmoms[0] = p.get("magmom_per_atom") or 1.0
        atoms.set_initial_magnetic_moments(magmoms)
    hybrid = p["functional"] != "PBE"
    if hybrid and p["mode"] != "pw":
        raise SystemExit("hybrid functionals need mode='pw' with GPAW")
    t0 = time.time()
    calc = _calculator(p, atoms, str(run_dir / "gpaw.txt"), old=hybrid)
    atoms.calc = calc
    if p["task"] == "relax":
        from ase.optimize import BFGS
        _log("PBE relaxation (BFGS, fmax 0.05 eV/A)")
        opt = BFGS(atoms, logfile=str(run_dir / "relax.log") if world.rank == 0 else None)
        converged = bool(opt.run(fmax=0.05, steps=int(p.get("extra", {}).get("max_steps", 60))))
        if world.rank == 0:
            ase.io.write(run_dir / "relaxed.extxyz", atoms, format="extxyz")
    else:
        converged = True
    energy = float(atoms.get_potential_energy())
    _log(f"{p['mode'].upper()} PBE ground state E = {energy:.4f} eV ({time.time() - t0:.1f} s)")
    nspins = calc.get_number_of_spins()
    nk = len(calc.get_ibz_k_points())
    eps = np.array([[calc.get_eigenvalues(kpt=k, spin=s) for k in range(nk)]
                    for s in range(nspins)])
    weights = np.asarray(calc.get_k_point_weights())
    occ = np.array([[calc.get_occupation_numbers(kpt=k, spin=s) / weights[k]
                     for k in range(nk)] for s in range(nspins)])
    occ = occ / (2.0 / nspins)  # 0..1 per state
    localization = _localization(calc, atoms, eps, occ, window=int(p.get("extra", {}).get(
        "localization_window", 4)))
    vacuum = _vacuum_level(calc, atoms)
    n_electrons = float(calc.get_number_of_electrons())
    common = dict(calc=calc, atoms=atoms, p=p, energy=energy, converged=converged,
                  vacuum=vacuum, n_electrons=n_electrons, run_dir=run_dir, t0=t0)
    functional, aexx, omega = "PBE", 0.0, 0.0
    if hybrid:
        # the PBE eigenvalues of the same ground state come for free: keep them
        _write_doc("result_pbe.json", eps, occ, weights, "PBE", 0.0, 0.0, False,
                   localization, **common)
        from gpaw.hybrids.eigenvalues import non_self_consistent_eigenvalues
        xcname = p["functional"]
        _log(f"non-self-consistent {xcname} eigenvalues")
        e_dft, v_dft, v_hyb = non_self_consistent_eigenvalues(calc, xcname)
        eps = e_dft - v_dft + v_hyb
        functional, aexx = xcname, 0.25
        omega = 0.11 * 1.8897261 if xcname == "HSE06" else 0.0  # GPAW's omega 0.11 bohr^-1
        for item in localization:
            item["energy_eV"] = float(eps[item["spin"], item["k"], item["band"]])
        _log(f"{xcname} done ({time.time() - t0:.1f} s)")
        if p["soc"]:
            _write_doc(f"result_{xcname.lower()}.json", eps, occ, weights, functional, aexx,
                       omega, False, localization, **common)
    if p["soc"]:
        from gpaw.spinorbit import soc_eigenstates
        _log("spin-orbit coupling (second variation)")
        soc = soc_eigenstates(calc, eigenvalues=eps if hybrid else None)
        e_soc = soc.eigenvalues()  # (nbzk, 2 * nbands)
        # aufbau filling of spinors: one electron each, n_electrons per k-point
        order = np.argsort(e_soc, axis=1)
        occ_soc = np.zeros_like(e_soc)
        n_fill = int(round(n_electrons))
        for k in range(e_soc.shape[0]):
            occ_soc[k, order[k, :n_fill]] = 1.0
        eps, occ = e_soc[None], occ_soc[None]
        weights = np.full(e_soc.shape[0], 1.0 / e_soc.shape[0])
        localization = []  # spinor localisation is not computed; see the collinear step
        _log(f"SOC done ({time.time() - t0:.1f} s)")
    doc = _write_doc("result.json", eps, occ, weights, functional, aexx, omega, bool(p["soc"]),
                     localization, **common)
    if doc is not None:
        _log(f"gap {doc.gap_eV:.3f} eV, result.json written ({time.time() - t0:.1f} s)")


def _write_doc(name, eps, occ, weights, functional, aexx, omega, soc, localization, *, calc,
               atoms, p, energy, converged, vacuum, n_electrons, run_dir, t0):
    """Write one ElectronicStructure from rank 0 (atomically); returns it there, else None."""
    from gpaw.mpi import world

    from perovdefect.parsers.document import ElectronicStructure
    if world.rank != 0:
        return None
    doc = ElectronicStructure(
        code="gpaw", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega, 4), soc=soc, converged=converged,
        total_energy_eV=energy, eigenvalues_eV=np.asarray(eps).tolist(),
        occupations=np.asarray(occ).tolist(), kpoint_weights=np.asarray(weights).tolist(),
        fermi_level_eV=_fermi_level(calc), n_electrons=n_electrons, charge=float(p["charge"]),
        nspins=int(np.asarray(eps).shape[0]), vacuum_level_eV=vacuum,
        is_cluster=not any(atoms.pbc), formula=atoms.get_chemical_formula(mode="metal"),
        source=str(run_dir / name), band_localization=localization,
        settings={"protocol": p, "mode": p["mode"], "gpaw_processes": world.size,
                  "hybrid": "non-self-consistent (gpaw.old.calculator ground state)"
                  if functional != "PBE" else None, "wall_time_s": round(time.time() - t0, 1)})
    doc.to_json(run_dir / name)
    return doc


if __name__ == "__main__":
    run(Path(sys.argv[1]))
