"""Executed as `[mpiexec -n N] python -m perovdefect.calcs.gpaw.runner RUN_DIR`.

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
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr


def _log(msg: str) -> None:
    from gpaw.mpi import world
    if world.rank == 0:
        print(f"[perovdefect {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _calculator(p: dict, settings: dict, kpoints: list[int], atoms, txt: str, old: bool):
    kw: dict = {"xc": "PBE", "txt": txt, "charge": p["charge"],
                "occupations": {"name": "fermi-dirac", "width": settings["smearing_eV"]},
                "convergence": {"density": _density_criterion(p, settings)}}
    if settings["mode"] == "pw":
        from gpaw import PW
        kw["mode"] = PW(p["cutoff_eV"])
        if settings.get("nbands"):
            kw["nbands"] = settings["nbands"]
    else:
        kw.update(mode="lcao", basis=settings["basis"], h=settings["grid_spacing_A"],
                  nbands="nao")
    if any(atoms.pbc) and tuple(kpoints) != (1, 1, 1):
        kw["kpts"] = {"size": tuple(kpoints), "gamma": True}
    if p["spin_polarized"]:
        kw["spinpol"] = True
    kw.update(_layout(p, settings, kpoints, atoms))
    if old:
        from gpaw.old.calculator import GPAW
    else:
        from gpaw import GPAW
    return GPAW(**kw)


def _density_criterion(p: dict, settings: dict) -> float:
    """GPAW's density criterion (electrons per valence electron) for this step: the setting
    relax_density_convergence for the geometries of a relaxation where it is set, else
    density_convergence."""
    loose = settings.get("relax_density_convergence")
    return float(loose) if p["task"] == "relax" and loose else settings["density_convergence"]


def _layout(p: dict, settings: dict, kpoints: list[int], atoms) -> dict:
    """GPAW's `parallel` keyword for this run under MPI: domain (not k-point) decomposition
    for SOC (after a spin-polarised run it needs it), for plane waves (their ground states are
    kept in that layout so that a later SOC step can reuse them) and wherever the only k-point
    is Gamma. There GPAW's default splits the two spins over the ranks, which the LCAO grid
    work (density and potential matrix, ~80 % of an SCF iteration) shares badly: measured on
    the 21-atom Cs4PbBr6 V_Br^0 cell (szp(dzp), h 0.25 A, 2 ranks), 7 SCF iterations took
    39 s with domain decomposition against 61 s split by spin. Empty with one rank or with
    k-points to split. The layout changes no result beyond round-off and no step digest."""
    from gpaw.mpi import world
    gamma_only = not any(atoms.pbc) or tuple(kpoints) == (1, 1, 1)
    if world.size > 1 and (p["soc"] or settings["mode"] == "pw" or gamma_only):
        return {"parallel": {"kpt": 1, "domain": world.size}}
    return {}


def _ground_state_key(p: dict, settings: dict, kpoints: list[int], atoms,
                      positions: bool = True) -> str:
    """Hash of everything a ground state depends on (not the functional of later steps);
    without `positions`, of everything but the geometry (a state that can be carried to
    another geometry of the same system)."""
    import hashlib
    payload = json.dumps({"symbols": atoms.get_chemical_symbols(),
                          "positions": atoms.positions.round(6).tolist() if positions else None,
                          "cell": atoms.cell.array.round(6).tolist(), "pbc": atoms.pbc.tolist(),
                          "charge": p["charge"], "spin": p["spin_polarized"],
                          "excitation": p.get("excitation"),
                          "cutoff": p["cutoff_eV"], "kpoints": list(kpoints),
                          "settings": {k: settings[k] for k in ("mode", "basis", "grid_spacing_A",
                                                                "smearing_eV", "nbands",
                                                                "density_convergence",
                                                                "magmom_per_atom")}},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _excite(calc, atoms, excitation: str, width_eV: float = 0.0) -> None:
    """DeltaSCF: converge the ground state, then promote one electron HOMO -> LUMO in the
    asked spin channel and keep that occupation with GPAW's maximum overlap method (MOM),
    the hole and the excited electron smeared by a Gaussian of `width_eV` (eV; 0: sharp)."""
    from gpaw.mom import prepare_mom_calculation
    atoms.get_potential_energy()
    spin_name, _ = excitation.split(":")
    s = {"up": 0, "down": 1}[spin_name]
    nspins = calc.get_number_of_spins()
    if nspins != 2:
        raise SystemExit("an excitation needs a spin-polarised calculation")
    f = [np.round(calc.get_occupation_numbers(kpt=0, spin=i)).astype(float)
         for i in range(nspins)]
    occupied = np.nonzero(f[s] > 0.5)[0]
    if not len(occupied) or occupied.max() + 1 >= len(f[s]):
        raise SystemExit(f"no HOMO/LUMO pair in spin channel {spin_name} to excite")
    homo = int(occupied.max())
    f[s][homo], f[s][homo + 1] = 0.0, 1.0
    _log(f"DeltaSCF: spin {spin_name} band {homo} -> {homo + 1} (MOM, Gaussian width "
         f"{width_eV:g} eV)")
    prepare_mom_calculation(calc, atoms, f, width=float(width_eV))


class _ExcitedPerGeometry(Calculator):
    """ASE calculator for excited-state relaxations. By default (setting mom_carry_over off) a
    fresh GPAW calculation at every geometry converges the ground state and then the MOM
    excited state (as _excite). Carrying the MOM state from one geometry to the next (GPAW
    reuses the LCAO coefficients of the previous geometry) broke down in the 21-atom Cs4PbBr6
    V_Br^0 cell: after a 0.2 A BFGS step the first SCF iteration sat ~177 eV above the excited
    state and never came back, with or without Gaussian MOM smearing; a fresh start at each
    geometry costs about one ground-state SCF more per step. `factory(txt)` builds the GPAW
    calculator writing to the file txt; `gpaw` is the last geometry's converged calculation.

    With `carry_maxiter` (setting mom_carry_over; LCAO) the MOM state of the previous geometry
    is carried to the next (GPAW's MOM follows its occupied orbitals by overlap), at most that
    many SCF iterations. A carried SCF that does not converge in them, or that lands more than
    MAX_CARRIED_CHANGE_EV from the previous geometry's energy (no BFGS step of <= 0.2 A moves
    it that much: another state), is replaced by the fresh start at that geometry; a carried
    state that converges to another state within that window is not detected. Measured on the
    9-atom CsPbBr3 V_Br^0 cell (sz(dzp), h 0.3): ~10 SCF iterations per carried geometry
    against 24 for ground + MOM, and after 15 carried BFGS steps the same energy (to 0.01 meV)
    and forces (7e-5 eV/A) as a fresh ground + MOM there."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, factory, excitation: str, width_eV: float, run_dir: Path,
                 carry_maxiter: int | None = None, start=None):
        super().__init__()
        self.factory, self.excitation, self.width_eV = factory, excitation, width_eV
        self.run_dir, self.carry_maxiter = run_dir, carry_maxiter
        # start(txt): the converged ground state at the first geometry (a GPAW calculation
        # writing to txt), or None: the first fresh start begins from it instead of from atoms
        self.start = start
        self.gpaw = self.work = self.last_energy = None
        self.n_geometries = 0  # fresh starts (each writes its own GPAW text file)

    def calculate(self, atoms=None, properties=("energy",), system_changes=tuple(all_changes)):
        super().calculate(atoms, properties, system_changes)
        if not (self.carry_maxiter and self.work is not None and self._carried()):
            self._fresh()
        self.last_energy = self.results["energy"]

    def _fresh(self) -> None:
        """A new GPAW calculation at this geometry: ground state, then the MOM excited state."""
        txt = "gpaw.txt" if self.n_geometries == 0 else \
            f"gpaw-geometry{self.n_geometries:03d}.txt"
        self.n_geometries += 1
        start, self.start = self.start, None
        self.gpaw = None
        if start is not None:
            try:
                self.gpaw = start(str(self.run_dir / txt))
            except Exception as exc:  # noqa: BLE001 - an unreadable file: start afresh
                _log(f"the ground state of the first geometry could not be read "
                     f"({type(exc).__name__}: {exc}); fresh start instead")
        if self.gpaw is None:
            self.gpaw = self.factory(str(self.run_dir / txt))
        self.work = self.atoms.copy()
        self.work.calc = self.gpaw
        _excite(self.gpaw, self.work, self.excitation, self.width_eV)
        self.results = {"energy": float(self.work.get_potential_energy()),
                        "forces": np.asarray(self.work.get_forces())}
        if self.carry_maxiter:  # the limit for the geometries carried from this one
            self.gpaw.dft.scf_loop.maxiter = self.carry_maxiter

    def _carried(self) -> bool:
        """Converge the excited state at the new geometry from the previous one's
        (_converge_carried); False (nothing kept: a fresh start follows) when it fails."""
        self.work.positions = self.atoms.positions
        energy = _converge_carried(self.work, self.carry_maxiter, self.last_energy,
                                   "the previous geometry")
        if energy is None:
            self.work = None
            return False
        self.results = {"energy": energy, "forces": np.asarray(self.work.get_forces())}
        return True


class _CarryLost(Exception):
    """A carried SCF iteration far from the previous geometry's energy (_lost_state_check)."""


def _lost_state_check(previous_eV: float):
    """GPAW `scf_step` hook for a carried state: raises _CarryLost at the first SCF iteration
    whose energy lies more than CARRY_LOST_EV (eV) from `previous_eV`. A carried state that
    holds starts within ~1 meV of the converged energy; one that MOM lost after a long BFGS
    step started ~90 eV too high and wandered tens of eV for all 25 iterations (21-atom
    Cs4PbBr6 V_Br^0, steps of 0.09-0.18 A; later runs lost it after steps of only 0.05 A,
    starting 28-133 eV too high), so stopping there saves ~24 SCF iterations per lost carry.
    The energy is broadcast from rank 0 so that every rank stops together."""
    from ase.units import Ha
    from gpaw.mpi import broadcast_float, world

    def check(ctx) -> None:
        energy = broadcast_float(float(ctx.energies.total_extrapolated) * Ha, world)
        if abs(energy - previous_eV) > CARRY_LOST_EV:
            raise _CarryLost(f"SCF iteration {ctx.niter} at {energy - previous_eV:+.1f} eV "
                             "from its energy (the state is lost)")
    return check


def _converge_carried(work, maxiter: int, previous_eV: float | None,
                      source: str) -> float | None:
    """Converge `work` (atoms whose GPAW calculator holds the state of another geometry) in at
    most `maxiter` SCF iterations and return its energy (eV); None, with the reason logged,
    when it does not converge or lands more than MAX_CARRIED_CHANGE_EV (eV) from `previous_eV`,
    the energy of the geometry it came from (another state: no BFGS step of <= 0.2 A and no
    CC step moves the energy that much). The caller then starts afresh."""
    from gpaw import ConvergenceError
    work.calc.dft.scf_loop.maxiter = maxiter
    if previous_eV is not None:
        work.calc.hooks["scf_step"] = _lost_state_check(previous_eV)
    try:
        energy = float(work.get_potential_energy())
    except ConvergenceError:
        _log(f"carry-over from {source}: not converged in {maxiter} SCF iterations; fresh "
             "start instead")
        return None
    except _CarryLost as lost:
        _log(f"carry-over from {source}: {lost}; fresh start instead")
        return None
    finally:
        work.calc.hooks.pop("scf_step", None)
    if previous_eV is not None and abs(energy - previous_eV) > MAX_CARRIED_CHANGE_EV:
        _log(f"carry-over from {source}: {energy - previous_eV:+.2f} eV from its energy "
             "(another state); fresh start instead")
        return None
    _log(f"state carried from {source} ({work.calc.get_number_of_iterations()} SCF "
         "iterations)")
    return energy


def _spinor_localization(soc, eps: np.ndarray, occ: np.ndarray, band_weights: dict, atoms,
                         window_eV: float, min_coverage: float = 0.9) -> list[dict]:
    """Localisation of the SOC spinors near the gap (Gamma, clusters): SOC (second variation)
    mixes the collinear states, spinor m = sum over (band n, spin s) of v_m,(n,s) |n s>, so its
    atom weights are sum |v|^2 w_(s,n) (cross terms between different collinear states
    dropped). Spinors whose weight lies less than `min_coverage` on collinear states with known
    localisation are left out rather than guessed."""
    from perovdefect.calcs.localization import character, ipr
    if not band_weights:
        return []
    v = np.asarray(soc.eigenvectors())[0]  # (spinor m, collinear index 2 n + s)
    nspins_collinear = 1 + max(s for s, _ in band_weights)
    symbols = atoms.get_chemical_symbols()
    homo = int(np.nonzero(occ > 0.5)[0].max())
    lumo_e = eps[homo + 1] if homo + 1 < len(eps) else eps[homo]
    out = []
    for m in np.nonzero((eps >= eps[homo] - window_eV) & (eps <= lumo_e + window_eV))[0]:
        c2 = np.abs(v[m]) ** 2
        w = np.zeros(len(atoms))
        covered = 0.0
        for idx, weight in enumerate(c2):
            band, spin = divmod(idx, 2)
            key = (spin if nspins_collinear == 2 else 0, band)
            if key in band_weights:
                w += weight * band_weights[key]
                covered += weight
        if covered < min_coverage:
            continue
        w /= covered
        out.append({"spin": 0, "k": 0, "band": int(m), "energy_eV": float(eps[m]),
                    "occupation": float(occ[m]), "ipr": round(ipr(w), 4),
                    "character": character(w, symbols),
                    "outside_weight": round(float(1.0 - w.sum()), 4)})
    return out


#: SCF iterations a carried state may take before the fresh start replaces it (setting
#: mom_carry_over). Measured: ~10 on the 9-atom CsPbBr3 cell (a fresh ground + MOM 24) and
#: 9-11 on the 21-atom Cs4PbBr6 V_Br^0 cell, where the 4 carried SCFs of 18 that failed each
#: spent the whole limit (then 40: ~4 min each) before the fresh start
MOM_CARRY_MAXITER = 25
#: eV: a carried state this far (up or down) from the previous geometry's energy is another
#: state
MAX_CARRIED_CHANGE_EV = 1.0
#: eV: a carried SCF iteration this far from the previous geometry's energy has lost the state
#: (_lost_state_check): the fresh start follows at once instead of after MOM_CARRY_MAXITER
CARRY_LOST_EV = 5.0


def carries_mom(settings: dict, excitation: str | None, task: str) -> bool:
    """Where the setting mom_carry_over carries a MOM excited state between geometries: in an
    excited-state relaxation, and in an LCAO excited single point run after the previous
    point of a path (the CC diagram). The one rule for the step digest, the relaxation's
    resume key and the backend's LCAO check: a carried MOM state may follow another excited
    state than a fresh HOMO -> LUMO would, so the setting identifies these steps."""
    return bool(settings.get("mom_carry_over") and excitation
                and (task == "relax" or settings.get("mode") == "lcao"))


def carries_state(settings: dict, excitation: str | None, task: str) -> bool:
    """Where the runner tries to carry a state: carries_mom's steps, and LCAO ground-state
    single points after another point of the same system (a CC point of the ground surface, a
    ladder static after a static). These are left out of the digest: an aufbau SCF converges
    to the same ground state from any start within its tolerance (measured on the CC path:
    1e-4 eV from a fresh one, tests/test_periodic_luminescence.py)."""
    return carries_mom(settings, excitation, task) or bool(
        settings.get("mom_carry_over") and task == "static" and settings.get("mode") == "lcao")


def _carry_source(previous: str | None, carry_key: str) -> dict | None:
    """The ground_state.json of the previous point of a path (setting mom_carry_over, LCAO
    single points) if it holds the same system at another geometry, with its wave functions."""
    info = _state_file(previous)
    if info is None or info.get("carry_key") != carry_key or info.get("energy_eV") is None:
        return None
    return info


def _read_state(gpw: str, txt: str, layout: dict, density: float | None = None):
    """The GPAW calculation saved in `gpw`, writing to `txt`, in the MPI `layout`, converging
    to the density criterion `density` (None: the file's own; a gpw file brings its own
    criteria and GPAW ignores keywords given with it, so they are replaced here)."""
    from gpaw import GPAW
    calc = GPAW(gpw, txt=txt, **layout)
    if density is not None:
        from gpaw.new.scf import create_convergence_criteria
        calc.dft.params.convergence = {**calc.dft.params.convergence, "density": density}
        calc.dft.scf_loop.convergence = create_convergence_criteria(
            {k: v for k, v in calc.dft.params.convergence.items() if k != "bands"})
    return calc


def _ground_start(previous: str | None, p: dict, settings: dict, kpoints: list[int], atoms,
                  layout: dict):
    """For the first geometry of an excited relaxation (setting mom_carry_over): start(txt)
    reading the previous step's state when it is this system's ground state at exactly this
    geometry (the ground relaxation it starts from keeps its last state), else None."""
    info = _state_file(previous)
    key = _ground_state_key({**p, "excitation": None}, settings, kpoints, atoms)
    if info is None or info.get("key") != key:
        return None

    def start(txt: str):
        _log(f"the first geometry's ground state from {info['gpw']}")
        return _read_state(info["gpw"], txt, layout, _density_criterion(p, settings))
    return start


def _carried_single_point(info: dict, atoms, p: dict, run_dir: Path, layout: dict,
                          density: float | None = None):
    """(calc, atoms) converged at this geometry from the previous point's wave functions (and
    its MOM occupations for an excited state: GPAW's MOM follows them by overlap) by
    _converge_carried to the density criterion `density` (default: the file's own, which a
    relaxation may have loosened), its GPAW text in RUN_DIR/gpaw-carried.txt; None (start
    afresh) when the previous state cannot be carried here (smeared MOM occupations, another
    symmetry, an unreadable file), does not converge, or lands too far from the previous
    point's energy."""
    try:
        calc = _read_state(info["gpw"], str(run_dir / "gpaw-carried.txt"), layout, density)
        work = calc.get_atoms()
        if p.get("excitation"):
            f = [np.asarray(calc.get_occupation_numbers(kpt=0, spin=s), float)
                 for s in range(calc.get_number_of_spins())]
            if any(np.abs(x - np.round(x)).max() > 1e-6 for x in f):
                _log("carry-over: the previous point's MOM occupations are smeared "
                     "(mom_width_eV > 0); fresh ground state + MOM instead")
                return None
            from gpaw.mom import prepare_mom_calculation
            prepare_mom_calculation(calc, work, [np.round(x) for x in f], width=0.0)
        work.positions = atoms.positions
        energy = _converge_carried(work, MOM_CARRY_MAXITER, info["energy_eV"], info["gpw"])
    except Exception as exc:  # noqa: BLE001 - e.g. gpaw's SymmetryBrokenError: start afresh
        _log(f"carry-over from {info['gpw']} impossible here ({type(exc).__name__}: {exc}); "
             "fresh start instead")
        return None
    return None if energy is None else (calc, work)

#: every geometry of a relaxation, kept so that an interrupted relaxation resumes
RELAX_TRAJECTORY = "relax.traj"


def _resume_relaxation(run_dir: Path, atoms, job: dict) -> int:
    """Put `atoms` at the last geometry of RUN_DIR/relax.traj when an earlier, interrupted run
    of this very job wrote it: the same protocol, settings and k-points (RUN_DIR/relax.key)
    and the same starting structure (its first frame, to 1e-4 A). Returns the number of
    geometries found there (0: start afresh). Any other trajectory, or one that cannot be
    read, is removed: a changed step never starts from another step's geometry."""
    import hashlib

    import ase.io
    from gpaw.mpi import world
    path, key_file = run_dir / RELAX_TRAJECTORY, run_dir / "relax.key"
    ident = {k: job[k] for k in ("protocol", "settings", "kpoints")}
    p = job["protocol"]
    if not carries_mom(ident["settings"], p.get("excitation"), p["task"]):
        # as the step digest: keys of relaxations from before the setting existed are kept
        ident["settings"] = {k: v for k, v in ident["settings"].items() if k != "mom_carry_over"}
    if ident["settings"].get("relax_density_convergence") is None:  # as the step digest
        ident["settings"] = {k: v for k, v in ident["settings"].items()
                             if k != "relax_density_convergence"}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    same_job = key_file.is_file() and key_file.read_text().strip() == key
    world.barrier()
    if world.rank == 0:
        key_file.write_text(key)
    if not path.is_file() or not same_job:
        return _forget_relaxation(run_dir, barrier=False)
    try:
        frames = ase.io.read(path, index=":")
    except Exception:  # noqa: BLE001 - a truncated file from a killed run: start afresh
        return _forget_relaxation(run_dir)
    same = frames and frames[0].get_chemical_symbols() == atoms.get_chemical_symbols() and \
        np.allclose(frames[0].positions, atoms.positions, atol=1e-4) and \
        np.allclose(frames[0].cell.array, atoms.cell.array, atol=1e-4)
    if not same:
        return _forget_relaxation(run_dir)
    atoms.positions = frames[-1].positions
    return len(frames)


def _forget_relaxation(run_dir: Path, barrier: bool = True) -> int:
    """Remove a trajectory and BFGS Hessian that must not be resumed (rank 0, after every rank
    has read them when `barrier`); returns 0, the number of geometries resumed."""
    from gpaw.mpi import world
    if barrier:
        world.barrier()
    if world.rank == 0:
        (run_dir / RELAX_TRAJECTORY).unlink(missing_ok=True)
        (run_dir / "bfgs.json").unlink(missing_ok=True)
    return 0


def _state_file(previous: str | None) -> dict | None:
    """The ground_state.json of a previous step whose wave-function file is still there."""
    if not previous:
        return None
    info_file = Path(previous) / "ground_state.json"
    if not info_file.is_file():
        return None
    info = json.loads(info_file.read_text())
    return info if Path(info.get("gpw", "")).is_file() else None


def _reusable(previous: str | None, key: str) -> dict | None:
    """The ground_state.json of the previous ladder step if it holds the same ground state."""
    info = _state_file(previous)
    return info if info is not None and info.get("key") == key else None


def _planar_potential(calc, atoms) -> dict | None:
    """Planar averages (eV) of the electrostatic potential along each cell vector (periodic
    cells: the input of the FNV correction and of the potential alignment)."""
    if not any(atoms.pbc):
        return None
    try:
        v = np.asarray(calc.get_electrostatic_potential())
    except Exception:  # not every calculator flavour offers it; the potential is optional
        return None
    return {"averages_eV": [v.mean(axis=(1, 2)).tolist(), v.mean(axis=(0, 2)).tolist(),
                            v.mean(axis=(0, 1)).tolist()],
            "cell_A": atoms.cell.array.tolist(), "convention": "electron"}


def _site_potentials(calc, atoms) -> list[float] | None:
    """Electrostatic potential at each atom (V, felt by a positive test charge; periodic
    cells): minus GPAW's get_atomic_electrostatic_potentials(), which returns the electron's
    potential energy (eV), i.e. the Hartree potential vHt (same sign as
    get_electrostatic_potential: negative at the nuclei) averaged over each atom's l=0
    compensation-charge shape function, as OUTCAR's "average electrostatic potential at
    core". The input of the eFNV and GKFO corrections."""
    if not all(atoms.pbc):
        return None
    try:
        w = np.asarray(calc.get_atomic_electrostatic_potentials(), float)
    except Exception:  # not every calculator flavour offers it; the potentials are optional
        return None
    return (-w).tolist() if w.shape == (len(atoms),) else None


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


def _localization(calc, atoms, eps: np.ndarray, occ: np.ndarray, window_eV: float,
                  weights_out: dict | None = None) -> list[dict]:
    """Atom-resolved weights and IPR of the states within `window_eV` below the HOMO and above
    the LUMO of each spin (Gamma): every state that can fall into a host's gap. The atom
    weights themselves go to `weights_out[(spin, band)]` when given (for the SOC spinors)."""
    from perovdefect.calcs.localization import atom_labels_for_grid, atom_weights, character, ipr
    out = []  # periodic cells: the first k-point (Gamma in the Gamma-centred meshes used here)
    labels = None
    symbols = atoms.get_chemical_symbols()
    nspins = eps.shape[0]
    for s in range(nspins):
        occupied = np.nonzero(occ[s, 0] > 0.5)[0]
        homo = int(occupied.max()) if occupied.size else -1  # -1: an empty spin channel (H)
        lumo_e = eps[s, 0, homo + 1] if homo + 1 < eps.shape[2] else eps[s, 0, homo]
        homo_e = eps[s, 0, homo] if homo >= 0 else lumo_e
        near = (eps[s, 0] >= homo_e - window_eV) & (eps[s, 0] <= lumo_e + window_eV)
        for n in np.nonzero(near)[0]:
            n = int(n)
            psi = calc.get_pseudo_wave_function(band=n, kpt=0, spin=s, pad=True)
            if labels is None:
                labels = atom_labels_for_grid(atoms.positions, atoms.cell.array, psi.shape,
                                              periodic=any(atoms.pbc))
            w = atom_weights(np.abs(psi) ** 2, labels, len(atoms))
            if weights_out is not None:
                weights_out[(s, n)] = w
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
    if world.rank == 0:  # an earlier run's state is not this run's until it is written anew
        (run_dir / "ground_state.json").unlink(missing_ok=True)
    p, settings, kpoints = job["protocol"], job["settings"], job["kpoints"]
    atoms = ase.io.read(run_dir / job["structure"], format="extxyz")
    if p["spin_polarized"]:
        per_atom = settings.get("magmom_per_atom")
        # every atom alike (as VASP's MAGMOM); default: 1 mu_B in all for an odd count
        atoms.set_initial_magnetic_moments(np.full(len(atoms), per_atom if per_atom is not None
                                                   else 1.0 / len(atoms)))
    if p["task"] == "relax":
        resumed = _resume_relaxation(run_dir, atoms, job)
        if resumed:
            _log(f"resuming the relaxation from the last of {resumed} geometries in "
                 f"{RELAX_TRAJECTORY} (an earlier run of this step stopped)")
    hybrid = job.get("hybrid")
    pw = settings["mode"] == "pw"
    t0 = time.time()
    key = _ground_state_key(p, settings, kpoints, atoms)
    carry_key = _ground_state_key(p, settings, kpoints, atoms, positions=False)
    reuse = _reusable(job.get("previous"), key) if p["task"] == "static" and pw else None
    # mom_carry_over: an LCAO single point after the previous point of a path starts from it
    carry = _carry_source(job.get("previous"), carry_key) if p["task"] == "static" and \
        carries_state(settings, p.get("excitation"), p["task"]) else None
    layout = _layout(p, settings, kpoints, atoms)
    carried = _carried_single_point(carry, atoms, p, run_dir, layout,
                                    _density_criterion(p, settings)) if carry else None
    if carried is not None:
        calc, atoms = carried
        converged = True
    elif reuse is not None:
        from gpaw.old.calculator import GPAW as OldGPAW
        calc = OldGPAW(reuse["gpw"], txt=str(run_dir / "gpaw.txt"), **layout)
        atoms = calc.get_atoms()
        converged = True
        _log(f"ground state reused from {reuse['gpw']}")
    else:
        # plane waves: gpaw.old's calculator, whose ground state the nsc hybrids need
        calc = None
        width = settings.get("mom_width_eV", 0.0)
        if p.get("excitation") and p["task"] == "relax":
            carry_mom = carries_mom(settings, p["excitation"], p["task"])
            atoms.calc = _ExcitedPerGeometry(
                lambda txt: _calculator(p, settings, kpoints, atoms, txt, old=pw),
                p["excitation"], width, run_dir,
                carry_maxiter=MOM_CARRY_MAXITER if carry_mom else None,
                start=_ground_start(job.get("previous"), p, settings, kpoints, atoms, layout)
                if carry_mom else None)
        else:
            calc = _calculator(p, settings, kpoints, atoms, str(run_dir / "gpaw.txt"), old=pw)
            atoms.calc = calc
            if p.get("excitation"):
                _excite(calc, atoms, p["excitation"], width)
        if p["task"] == "relax":
            from ase.optimize import BFGS
            _log(f"PBE relaxation (BFGS, fmax {settings['relax_fmax_eV_per_A']} eV/A)")
            # every geometry goes to relax.traj and the Hessian to bfgs.json, so that a run
            # killed half-way resumes where it stopped (_resume_relaxation)
            opt = BFGS(atoms, logfile=str(run_dir / "relax.log") if world.rank == 0 else None,
                       trajectory=str(run_dir / RELAX_TRAJECTORY), append_trajectory=True,
                       restart=str(run_dir / "bfgs.json"))
            converged = bool(opt.run(fmax=settings["relax_fmax_eV_per_A"],
                                     steps=settings["relax_max_steps"]))
            # every rank calls it: ASE's write is a collective (master writes, all sync)
            ase.io.write(run_dir / "relaxed.extxyz", atoms, format="extxyz")
            if calc is None:  # the excited state's last GPAW calculation
                calc = atoms.calc.gpaw
        else:
            converged = True
    energy = float(atoms.get_potential_energy())
    _log(f"{settings['mode'].upper()} PBE ground state E = {energy:.4f} eV "
         f"({time.time() - t0:.1f} s)")
    ground_state = dict(reuse or {}, key=key)
    # mom_carry_over: a relaxation keeps its last state too, for the CC point at its minimum
    relax_kept = p["task"] == "relax" and settings.get("mom_carry_over") and not pw
    if reuse is None and (relax_kept or p["task"] == "static" and (
            pw or settings.get("keep_wavefunctions", True))):
        # the ground state a later hybrid/SOC step reuses (plane waves), and the wave functions
        # a finished run keeps for later analysis (transition dipoles; keep_wavefunctions)
        calc.write(str(run_dir / "gs.gpw"), mode="all")
        if p["task"] == "relax":  # the last geometry's state, as the next step reads it
            key = _ground_state_key(p, settings, kpoints,
                                    ase.io.read(run_dir / "relaxed.extxyz", format="extxyz"))
        ground_state = {"key": key, "gpw": str(run_dir / "gs.gpw"), "carry_key": carry_key,
                        "energy_eV": energy}
    nspins = calc.get_number_of_spins()
    nk = len(calc.get_ibz_k_points())
    eps = np.array([[calc.get_eigenvalues(kpt=k, spin=s) for k in range(nk)]
                    for s in range(nspins)])
    weights = np.asarray(calc.get_k_point_weights())
    occ = np.array([[calc.get_occupation_numbers(kpt=k, spin=s) / weights[k]
                     for k in range(nk)] for s in range(nspins)])
    occ = occ / (2.0 / nspins)  # 0..1 per state
    band_weights: dict = {}
    localization = _localization(calc, atoms, eps, occ, settings["localization_window_eV"],
                                 band_weights)
    vacuum = _vacuum_level(calc, atoms)
    n_electrons = float(calc.get_number_of_electrons())
    common = dict(calc=calc, atoms=atoms, p=p, settings=settings, energy=energy,
                  converged=converged, vacuum=vacuum, n_electrons=n_electrons, run_dir=run_dir,
                  t0=t0, potential=_planar_potential(calc, atoms),
                  site_potentials=_site_potentials(calc, atoms), kpoints=kpoints)
    functional, aexx, omega = "PBE", 0.0, 0.0
    if hybrid:
        # the PBE eigenvalues of the same ground state come for free: keep them
        _write_doc("result_pbe.json", eps, occ, weights, "PBE", 0.0, 0.0, False,
                   localization, **common)
        from gpaw.hybrids import parse_name
        _, aexx, omega_bohr, _ = parse_name(hybrid)
        omega = omega_bohr / Bohr  # 1/A
        saved = Path(reuse["hybrid_eigenvalues"]) if reuse and reuse.get("hybrid") == hybrid \
            and reuse.get("hybrid_eigenvalues") else None
        if saved is not None and saved.is_file():
            eps = np.load(saved)["eps"]
            _log(f"{hybrid} eigenvalues reused from {saved}")
        else:
            from gpaw.hybrids.eigenvalues import non_self_consistent_eigenvalues
            _log(f"non-self-consistent {hybrid} eigenvalues")
            e_dft, v_dft, v_hyb = non_self_consistent_eigenvalues(calc, hybrid)
            eps = e_dft - v_dft + v_hyb
            if world.rank == 0:
                np.savez(run_dir / "hybrid_eigenvalues.npz", eps=eps)
            ground_state.update(hybrid=hybrid,
                                hybrid_eigenvalues=str(run_dir / "hybrid_eigenvalues.npz"))
        functional = hybrid
        saved_energy = reuse.get("hybrid_energy_eV") if reuse and reuse.get("hybrid") == hybrid \
            else None
        if saved_energy is None:
            saved_energy = _hybrid_total_energy(calc, hybrid, energy)
            ground_state.update(hybrid=hybrid, hybrid_energy_eV=saved_energy)
        common.update(energy=float(saved_energy), energy_note=(
            f"non-self-consistent {hybrid} total energy (gpaw.hybrids.energy) of the PBE "
            "ground state's orbitals and occupations"))
        _log(f"{hybrid} total energy {saved_energy:.4f} eV (PBE {energy:.4f} eV)")
        for item in localization:
            item["energy_eV"] = float(eps[item["spin"], item["k"], item["band"]])
        _log(f"{hybrid} done ({time.time() - t0:.1f} s)")
        if p["soc"]:
            _write_doc(f"result_{hybrid.lower()}.json", eps, occ, weights, functional, aexx,
                       omega, False, localization, **common)
    if world.rank == 0 and "gpw" in ground_state:
        (run_dir / "ground_state.json").write_text(json.dumps(ground_state))
    if p["soc"]:
        from gpaw.spinorbit import soc_eigenstates
        common["energy_note"] = (common.get("energy_note") or "PBE total energy") + (
            "; without SOC: second-variation SOC changes the eigenvalues only")
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
        localization = _spinor_localization(soc, e_soc[0], occ_soc[0], band_weights, atoms,
                                            settings["localization_window_eV"])
        _log(f"SOC done ({time.time() - t0:.1f} s)")
    doc = _write_doc("result.json", eps, occ, weights, functional, aexx, omega, bool(p["soc"]),
                     localization, **common)
    if doc is not None:
        gap = "no gap (partially occupied)" if doc.gap_eV is None else f"gap {doc.gap_eV:.3f} eV"
        _log(f"{gap}, result.json written ({time.time() - t0:.1f} s)")


def _hybrid_total_energy(calc, hybrid: str, pbe_energy: float) -> float:
    """Non-self-consistent hybrid total energy (eV) of a converged PBE plane-wave calculation
    (gpaw.old calculator), with its own occupations: a constrained (DeltaSCF) state's too:
    `pbe_energy` (the PBE energy as stored, extrapolated to zero smearing) plus GPAW's
    correction, the sum of its contributions after the first (the first is the PBE free
    energy, not extrapolated: summing it would mix two footings under smearing).
    GPAW takes the bands entering the exact exchange as the first N, N the largest number of
    occupied states of any spin and k-point (occupation above ftol), so an electron promoted
    above that count would be left out; then every band enters (ftol < 0: the empty ones
    weigh nothing, at a higher cost) instead."""
    from gpaw.hybrids.energy import non_self_consistent_energy
    ftol = 1e-9
    kpts = calc.wfs.kpt_u
    count = max(int(((k.f_n / k.weight) > ftol).sum()) for k in kpts)
    highest = max(int(np.nonzero((k.f_n / k.weight) > ftol)[0].max()) + 1 for k in kpts)
    if highest > count:
        _log(f"an occupied band ({highest - 1}) lies above GPAW's count of {count} occupied "
             "bands: every band enters the exact exchange")
        ftol = -1.0
    _log(f"non-self-consistent {hybrid} total energy")
    return float(pbe_energy + non_self_consistent_energy(calc, hybrid, ftol=ftol)[1:].sum())


def _theory(atoms, p, settings, kpoints, functional, aexx, omega, soc):
    """The run's LevelOfTheory; None (the comparison then says what it could not compare)
    rather than losing a finished run if GPAW's setup files cannot be read back."""
    from perovdefect.calcs.gpaw.theory import gpaw_level_of_theory
    try:
        return gpaw_level_of_theory(atoms.get_chemical_symbols(), p, settings, kpoints,
                                    functional, aexx, omega, soc)
    except Exception as exc:  # noqa: BLE001 - metadata only; the eigenvalues are kept
        _log(f"level of theory not recorded ({type(exc).__name__}: {exc})")
        return None


def _write_doc(name, eps, occ, weights, functional, aexx, omega, soc, localization, *, calc,
               atoms, p, settings, energy, converged, vacuum, n_electrons, run_dir, t0,
               potential, site_potentials=None, kpoints=None, energy_note="PBE total energy"):
    """Write one ElectronicStructure from rank 0 (atomically); returns it there, else None."""
    from gpaw.mpi import world

    from perovdefect.calcs.document import StructureData, build_document
    if world.rank != 0:
        return None
    doc = build_document(
        code="gpaw", functional=functional, exact_exchange_fraction=aexx,
        screening_inv_A=round(omega, 4), soc=soc, converged=converged,
        total_energy_eV=energy, eigenvalues_eV=np.asarray(eps).tolist(),
        occupations=np.asarray(occ).tolist(), kpoint_weights=np.asarray(weights).tolist(),
        fermi_level_eV=_fermi_level(calc), n_electrons=n_electrons, charge=float(p["charge"]),
        nspins=int(np.asarray(eps).shape[0]), vacuum_level_eV=vacuum,
        is_cluster=not any(atoms.pbc), formula=atoms.get_chemical_formula(mode="metal"),
        source=str(run_dir / name), band_localization=localization,
        structure=StructureData.from_atoms(atoms), planar_potential=potential,
        site_potentials_V=site_potentials,
        theory=_theory(atoms, p, settings, kpoints, functional, aexx, omega, soc),
        settings={"protocol": p, "gpaw": settings, "gpaw_processes": world.size,
                  "hybrid": "non-self-consistent (gpaw.old.calculator ground state)"
                  if functional != "PBE" else None, "total_energy": energy_note,
                  "wall_time_s": round(time.time() - t0, 1)})
    doc.to_json(run_dir / name)
    return doc


if __name__ == "__main__":
    run(Path(sys.argv[1]))
