"""GPAW backend: write a run directory and execute perovdefect.calcs.gpaw.runner in a subprocess
(under mpiexec when GPAW has MPI and more than one core is present).

Parallel choice (measured here on 2 cores): MPI ranks beat OpenBLAS threads ~2x for LCAO, so
LCAO runs on min(cores, 2*k) ranks with one thread each. Plane-wave mode on several ranks needs a
ScaLAPACK-enabled GPAW; without it PW runs on one rank with OpenBLAS threads.

Ladder reuse: a plane-wave static step saves its ground state (gs.gpw); the following hybrid
step on the same structure loads it instead of recomputing it, and saves its hybrid eigenvalues;
the SOC step after it loads both. The reuse is keyed by a hash of everything the ground state
depends on, so a changed structure or setting is recomputed, never silently reused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from ase.units import Bohr

from perovdefect.calcs.backend import Backend, CalculationError, count_electrons
from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.transition import TransitionDipoles
from perovdefect.errors import ProtocolError
from perovdefect.structures.record import StructureRecord

#: GPAW's non-self-consistent hybrids (gpaw.hybrids.parse_name): exact-exchange fraction and
#: screening (bohr^-1). GPAW cannot run other fractions or screenings.
GPAW_HYBRIDS = {"HSE06": (0.25, 0.11), "PBE0": (0.25, 0.0)}


def gpaw_available() -> bool:
    """True when GPAW and its PAW setups can be imported."""
    try:
        import gpaw  # noqa: F401
    except ImportError:
        return False
    return True


def gpaw_setup_valences(symbols: list[str], setup_type: str = "paw",
                        setup_xc: str = "PBE") -> dict[str, int]:
    """Valence electrons (Z valence, e) of GPAW's `setup_type` setups for `setup_xc`, read by
    GPAW's own setup reader from the setup files GPAW would load; ProtocolError for an
    element GPAW has no such setup for."""
    return {el: _setup_valence(el, setup_type, setup_xc) for el in set(symbols)}


@lru_cache(maxsize=None)
def _setup_valence(symbol: str, setup_type: str, setup_xc: str) -> int:
    try:
        from gpaw.setup_data import SetupData
    except ImportError:
        raise ProtocolError(f"gpaw: cannot read its setups to count electrons: "
                            f"{GpawBackend.unavailable_reason()}") from None
    try:
        data = SetupData(symbol, setup_xc, setup_type)
    except (RuntimeError, OSError, KeyError) as exc:  # no such setup in GPAW's search path
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProtocolError(f"gpaw: no {setup_type} {setup_xc} setup for element {symbol!r} "
                            f"({first})") from None
    return int(round(data.Nv))


def _has_mpi_and_scalapack() -> tuple[bool, bool]:
    try:
        import _gpaw
    except ImportError:
        return False, False
    mpi = hasattr(_gpaw, "Communicator")
    scalapack = any("blacs" in n.lower() for n in dir(_gpaw))
    return mpi, scalapack


def choose_parallel(mode: str, cores: int | None = None) -> tuple[int, int]:
    """(MPI ranks, threads per rank) for GPAW `mode` (lcao/pw) on `cores` cores."""
    cores = cores or os.cpu_count() or 1
    mpi, scalapack = _has_mpi_and_scalapack()
    if os.environ.get("PEROVDEFECT_GPAW_NPROCS"):
        return int(os.environ["PEROVDEFECT_GPAW_NPROCS"]), 1
    if not mpi or shutil.which("mpiexec") is None or cores < 2:
        return 1, cores
    if mode == "pw" and not scalapack:
        return 1, cores
    return cores, 1


class GpawBackend(Backend):
    """GPAW, run here. Settings: mode (lcao|pw), basis (LCAO), grid_spacing_A (LCAO real-space
    grid, A), smearing_eV (Fermi-Dirac width), density_convergence (GPAW's density criterion,
    electrons per valence electron), relax_density_convergence (the criterion of the
    geometries a relaxation passes through, the last one included; None, the default: the
    same; 1e-4 halves the SCF iterations of a carried geometry, measured in
    benchmarks/luminescence_chain.py, where the CC points, single points at
    density_convergence, give the energies), nbands (PW; None: GPAW's
    default), magmom_per_atom (initial collinear moment on every atom, mu_B; default: 1 mu_B in
    all for odd electron counts), relax_fmax_eV_per_A, relax_max_steps, localization_window_eV
    (states this far below the HOMO and above the LUMO get their localisation computed),
    mom_width_eV (DeltaSCF steps only: width of the Gaussian smearing GPAW's maximum overlap
    method may give the hole and the excited electron, eV, doi:10.1021/acs.jctc.0c00597;
    default 0, sharp occupations: a width spreads the hole over degenerate levels, e.g. the Na
    3p triplet, and did not cure the 21-atom V_Br^0 divergence, which fresh per-geometry
    excited states did),
    mom_carry_over (LCAO only: carry the state from one geometry to the next instead of a
    fresh start at each: the MOM excited state between the geometries of an excited-state
    relaxation, and the wave functions (with the MOM occupations of an excited state, sharp
    ones only) of a static step's previous step, its gs.gpw, when it holds the same system:
    the previous point of a CC-diagram surface (the first point of each surface: the
    relaxation at its minimum, which then keeps its last state in gs.gpw too), or the
    previous static of a ladder; an excited relaxation after the ground relaxation starts
    from that ground state when it is at the same geometry; a
    carried SCF that does not converge in runner.MOM_CARRY_MAXITER iterations, or lands more
    than runner.MAX_CARRIED_CHANGE_EV from the previous geometry's energy, falls back to the
    fresh start; the wave functions travel in gs.gpw, so it needs keep_wavefunctions; default
    false, the fresh start, which the shipped results used),
    keep_wavefunctions (static steps write RUN_DIR/gs.gpw with the wave functions, mode='all',
    for later analysis such as transition dipoles; plane-wave static steps always do, for the
    ladder's reuse). LCAO files hold little besides the grids: ~8 bytes x (8 + 2 x 2 spins)
    x the coarse grid points (the fine-grid electrostatic potential dominates) + the
    coefficients: 5.9 MB measured for an atom in a 10 A box, ~10 MB estimated for the 22-atom
    Cs4PbBr6 cell at 0.22 A."""

    name = "gpaw"
    packages = ("gpaw", "gpaw-data")
    capabilities = frozenset({"hybrid", "soc", "relax", "electrostatic_potential", "run_here",
                              "constrained_occupations", "transition_dipole"})
    calc_defaults: dict[str, Any] = {
        "mode": "lcao", "basis": "dzp", "grid_spacing_A": 0.22, "smearing_eV": 0.01,
        "density_convergence": 1e-5, "relax_density_convergence": None, "nbands": None,
        "magmom_per_atom": None,
        "relax_fmax_eV_per_A": 0.05, "relax_max_steps": 60, "localization_window_eV": 8.0,
        "mom_width_eV": 0.0, "mom_carry_over": False, "keep_wavefunctions": True}
    output_settings = ("keep_wavefunctions",)
    excitation_settings = ("mom_width_eV",)

    presets = {"quick": {"mode": "lcao", "grid_spacing_A": 0.25}, "hybrid": {"mode": "pw"}}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not gpaw_available():
            return ("GPAW is not installed, so no calculation can run here: install it with "
                    "`pip install 'perovdefect[gpaw]'` (needs libxc-dev, libopenblas-dev and an "
                    "MPI; scripts/setup.sh does it), or run the demo without DFT (`dft`)")
        return None

    def validate_settings(self) -> None:
        s = self.settings
        if s["mode"] not in ("lcao", "pw"):
            raise ProtocolError(f"gpaw setting mode must be lcao or pw, got {s['mode']!r}")
        for key in ("grid_spacing_A", "smearing_eV", "density_convergence",
                    "relax_fmax_eV_per_A", "localization_window_eV"):
            if not isinstance(s[key], (int, float)) or not s[key] > 0:
                raise ProtocolError(f"gpaw setting {key} must be a positive number, got "
                                    f"{s[key]!r}")
        loose = s["relax_density_convergence"]
        if loose is not None and (isinstance(loose, bool) or not isinstance(loose, (int, float))
                                  or not loose > 0):
            raise ProtocolError("gpaw setting relax_density_convergence must be a positive "
                                f"number or null, got {loose!r}")
        for key in ("relax_max_steps",):
            if not isinstance(s[key], int) or s[key] < 1:
                raise ProtocolError(f"gpaw setting {key} must be a positive integer")
        if not isinstance(s["mom_width_eV"], (int, float)) or not 0 <= s["mom_width_eV"] < 1:
            raise ProtocolError("gpaw setting mom_width_eV must be a number from 0 to 1 eV, got "
                                f"{s['mom_width_eV']!r}")
        if not isinstance(s["mom_carry_over"], bool):
            raise ProtocolError("gpaw setting mom_carry_over must be true or false, got "
                                f"{s['mom_carry_over']!r}")
        if not isinstance(s["keep_wavefunctions"], bool):
            raise ProtocolError("gpaw setting keep_wavefunctions must be true or false")
        if s["mom_carry_over"] and not s["keep_wavefunctions"]:
            raise ProtocolError("gpaw setting mom_carry_over carries the wave functions a "
                                "static step writes (gs.gpw): it needs keep_wavefunctions true")

    def check(self, record: StructureRecord | None, protocol: Protocol) -> None:
        super().check(record, protocol)
        if protocol.is_hybrid:
            if self.settings["mode"] != "pw":
                raise ProtocolError(f"GPAW hybrid steps ({protocol.name}) need the plane-wave "
                                    "mode: set settings mode: pw")
            self.hybrid_name(protocol)
        from perovdefect.calcs.gpaw.runner import carries_mom
        if carries_mom(self.settings, protocol.excitation, protocol.task) and \
                self.settings["mode"] != "lcao":
            raise ProtocolError(f"gpaw setting mom_carry_over ({protocol.name}) needs mode "
                                "lcao: GPAW carries the LCAO coefficients of the excited state "
                                "between geometries")
        if protocol.excitation and record is not None and any(record.atoms.pbc):
            from perovdefect.calcs.kpoints import monkhorst_pack
            mesh = monkhorst_pack(record.atoms, protocol)
            if tuple(mesh) != (1, 1, 1):
                # MOM constrains the occupations of one k-point; a mesh would excite a fraction
                raise ProtocolError(f"GPAW constrained occupations ({protocol.name}) need a "
                                    f"Gamma-only supercell calculation, got the k-mesh {mesh}: "
                                    "set kpoints (1, 1, 1) and converge the supercell size "
                                    "instead")

    def digest_settings(self, protocol: Protocol | None = None) -> dict[str, Any]:
        """As Backend's, and for hybrid steps the total energy they store: the nsc hybrid
        energy since it replaced the PBE one, so a hybrid step finished before (PBE energy)
        is recomputed rather than mixed with new ones (the ground state is reused)."""
        out = super().digest_settings(protocol)
        # it can change which excited state a carried MOM calculation follows (by overlap
        # against a fresh HOMO -> LUMO at each geometry), so it identifies those steps
        # (runner.carries_mom), only when on: steps finished before the setting existed keep
        # their digests; carried ground states are not (runner.carries_state says why)
        from perovdefect.calcs.gpaw.runner import carries_mom
        if protocol is None or not carries_mom(out, protocol.excitation, protocol.task):
            out.pop("mom_carry_over", None)
        # only relaxations use it, and only when set: other digests stay as they were
        if out.get("relax_density_convergence") is None or protocol is None or \
                protocol.task != "relax":
            out.pop("relax_density_convergence", None)
        if protocol is not None and protocol.is_hybrid:
            out["hybrid_total_energy"] = "non-self-consistent"
        return out

    @staticmethod
    def hybrid_name(protocol: Protocol) -> str:
        """GPAW's name for the protocol's hybrid, or a ProtocolError saying what GPAW can do."""
        for name, (aexx, omega_bohr) in GPAW_HYBRIDS.items():
            screening = omega_bohr / Bohr  # 1/A
            # VASP's HSE06 (0.2/A) and libxc's (0.11/bohr = 0.208/A) are the same functional
            if abs(protocol.aexx - aexx) < 1e-9 and abs(protocol.screening - screening) <= 0.011:
                return name
        raise ProtocolError(
            f"GPAW cannot run a hybrid with exact-exchange fraction {protocol.aexx:g} and "
            f"screening {protocol.screening:g}/A: its non-self-consistent hybrids are HSE06 "
            "(0.25, 0.11/bohr = 0.208/A) and PBE0 (0.25, unscreened); use another code")

    def valence_electrons(self, record: StructureRecord, protocol: Protocol) -> int:
        """From the PAW setups the runner uses (GPAW's default 'paw' set for PBE: the ground
        state of every step, hybrids included, is PBE), minus the record's charge."""
        return count_electrons(record, gpaw_setup_valences(record.atoms.get_chemical_symbols()))

    def effective_protocol(self, record: StructureRecord, protocol: Protocol) -> Protocol:
        # GPAW runs SOC on top of a collinear (spin-polarised for odd counts) ground state
        protocol = super().effective_protocol(record, protocol)
        if not protocol.spin_polarized and self.unpaired_electron(record, protocol):
            protocol = protocol.with_(spin_polarized=True)
        return protocol

    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        from perovdefect.calcs.kpoints import monkhorst_pack
        record.write(directory / "structure.extxyz")
        job = {"protocol": protocol.as_dict(), "settings": self.settings,
               "kpoints": list(monkhorst_pack(record.atoms, protocol)),
               "hybrid": self.hybrid_name(protocol) if protocol.is_hybrid else None,
               "structure": "structure.extxyz", "previous": str(previous) if previous else None,
               "metadata": record.summary()}
        (directory / "job.json").write_text(json.dumps(job, indent=1, default=str))

    def run(self, record: StructureRecord, protocol: Protocol, directory: Path,
            resources: dict[str, Any], log: Callable | None = None) -> None:
        """The runner (its job: job.json, GPAW's input as write_inputs wrote it) in a
        subprocess, on resources gpaw_cores cores (default: this machine's)."""
        reason = self.unavailable_reason()
        if reason:
            raise CalculationError(reason)
        cores = resources.get("gpaw_cores")
        ranks, threads = choose_parallel(self.settings["mode"], int(cores) if cores else None)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   GPAW_MPI_BACKEND="cgpaw", OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
        cmd = [sys.executable, "-m", "perovdefect.calcs.gpaw.runner", str(directory)]
        if ranks > 1:
            cmd = ["mpiexec", "-n", str(ranks), *cmd]
        with open(directory / "run.log", "w") as fh:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env)
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                fh.flush()
                if log is not None and line.startswith("[perovdefect"):
                    log(line.rstrip())
            rc = proc.wait()
        if rc != 0 or not (directory / "result.json").is_file():
            lines = (directory / "run.log").read_text().strip().splitlines()
            # the Python error, not Open MPI's abort boilerplate after it
            errors = [ln for ln in lines if re.search(r"(Error|Exception|SystemExit)\b", ln)
                      and "MPI" not in ln]
            tail = (errors or lines)[-3:]
            raise CalculationError(f"GPAW run in {directory} failed (exit {rc}); from "
                                   f"run.log:\n  " + "\n  ".join(tail))

    def parse(self, directory: Path) -> ElectronicStructure:
        return ElectronicStructure.from_json(directory / "result.json")

    @classmethod
    def transition_dipoles(cls, directory: Path, initial: list[int], final: list[int],
                           spin: int) -> TransitionDipoles:
        """From the run's saved wave functions (gs.gpw), in a subprocess
        (perovdefect.calcs.gpaw.dipole says how: clusters through GPAW's own dipole matrix
        elements, periodic Gamma-point cells as the dipole of localised states)."""
        from perovdefect.calcs.gpaw.dipole import transition_dipoles
        reason = cls.unavailable_reason()
        if reason:
            raise CalculationError(reason)
        return transition_dipoles(Path(directory), initial, final, spin)

    @classmethod
    def soc_level_shifts(cls, directory: Path, spin: int, bands: list[int]
                         ) -> dict[int, tuple[float, float]]:
        """perovdefect.calcs.gpaw.soc_levels says how (subprocess, gs.gpw)."""
        from perovdefect.calcs.gpaw.soc_levels import soc_level_shifts
        reason = cls.unavailable_reason()
        if reason:
            raise CalculationError(reason)
        return soc_level_shifts(Path(directory), spin, bands)

    def relaxed_structure(self, directory: Path, record: StructureRecord
                          ) -> StructureRecord | None:
        import ase.io
        path = directory / "relaxed.extxyz"
        if not path.is_file():
            return None
        atoms = ase.io.read(path, format="extxyz")
        atoms.pbc = record.atoms.pbc
        atoms.info = {}
        return StructureRecord(atoms, dict(record.metadata))

    def describe(self, protocol: Protocol) -> dict[str, Any]:
        s = self.settings
        return {"code": self.name, "functional": protocol.label,
                "cutoff_eV": protocol.cutoff_eV if s["mode"] == "pw" else None,
                "basis": s["basis"] if s["mode"] == "lcao" else f"PW {protocol.cutoff_eV:g} eV",
                "kpoints": protocol.kpoints or protocol.kpoint_density_inv_A,
                "settings": {"mode": s["mode"], "grid_spacing_A": s["grid_spacing_A"]
                             if s["mode"] == "lcao" else None}}


def run_gpaw(record: StructureRecord, protocol: Protocol, run_dir: str | Path,
             cores: int | None = None, log=None, previous: str | Path | None = None,
             **settings: Any) -> ElectronicStructure:
    """Convenience: one durable GPAW step (settings as GpawBackend's), returns the result."""
    backend = GpawBackend(**settings)
    doc, _ = backend.execute(record, protocol, run_dir,
                             {"gpaw_cores": cores} if cores else {}, previous, log)
    return doc
