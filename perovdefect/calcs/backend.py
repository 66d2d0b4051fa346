"""The Backend contract every code implements, and the registry that finds them.

A backend (in the spirit of custodian's Job and atomate2's Makers) turns one structure + one
code-independent Protocol into a finished calculation in a run directory:

    backend = get_backend("name", **overrides)    # code-specific settings, validated
    backend.check(record, protocol)               # refuses what it cannot honour
    doc = backend.execute(record, protocol, run_dir, resources)   # durable: never twice

`execute` = write_inputs -> run -> parse, then the rundir marker (perovdefect.calcs.rundir); a
finished step (same structure, protocol, code and settings) is returned without recomputing.
Backends are found through the entry-point group ``perovdefect.backends``: a new code is one
module and one line in pyproject.toml. Nothing outside perovdefect.calcs names a code.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, ClassVar

from perovdefect.calcs.document import ElectronicStructure
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.transition import TransitionDipoles
from perovdefect.errors import PerovDefectError, ProtocolError
from perovdefect.structures.record import StructureRecord

ENTRY_POINT_GROUP = "perovdefect.backends"

#: Capability names a backend may declare.
CAPABILITIES = ("hybrid", "soc", "relax", "constrained_occupations", "electrostatic_potential",
                "run_here", "transition_dipole")


class CalculationError(PerovDefectError):
    """A backend run that failed; the message names the run directory and log."""


class Backend(ABC):
    """One electronic-structure code. Subclasses set `name`, `capabilities`, `calc_defaults`
    (every setting the code accepts, with its default) and implement the four steps.

    Resources (executables, cores) come from the worker at run time as a plain dict (the
    FireWorker's env, e.g. my_fworker.yaml), never from the campaign, and reach `run` as its
    argument."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    calc_defaults: ClassVar[dict[str, Any]] = {}
    #: file names this backend recognises as its outputs (for perovdefect.parsers.parse)
    output_files: ClassVar[tuple[str, ...]] = ()
    #: named settings bundles a caller may use without knowing the code's setting names:
    #: "quick" (the cheapest useful semilocal run) and "hybrid" (what hybrid/SOC tiers need)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"quick": {}, "hybrid": {}}
    #: Python distributions the backend runs on (their versions go into reports)
    packages: ClassVar[tuple[str, ...]] = ()
    #: settings that choose only what a step keeps on disk, never its result: left out of the
    #: step digest, so changing one never reruns a finished step
    output_settings: ClassVar[tuple[str, ...]] = ()
    # settings read only by steps with constrained occupations (an excitation): a ground-state
    # step's identity does not depend on them, so tuning them never reruns a finished ground state
    excitation_settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run a calculation on this machine now (None: it can)."""
        return None if "run_here" in cls.capabilities else \
            f"{cls.name} runs on the workers of a queue, not here"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.capabilities) - set(CAPABILITIES)
        if unknown:  # a typo here would silently disable a check
            raise TypeError(f"{cls.__name__}: unknown capabilities {sorted(unknown)}; known: "
                            f"{CAPABILITIES}")

    def __init__(self, **overrides: Any) -> None:
        unknown = sorted(set(overrides) - set(self.calc_defaults))
        if unknown:
            raise ProtocolError(f"{self.name}: unknown setting(s) {unknown}; known: "
                                f"{sorted(self.calc_defaults)}")
        self.settings: dict[str, Any] = {**copy.deepcopy(self.calc_defaults), **overrides}
        self.validate_settings()

    # -- the contract -------------------------------------------------------------------------
    def validate_settings(self) -> None:
        """Check the values of self.settings (types, ranges); raise ProtocolError naming one."""

    def check(self, record: StructureRecord | None, protocol: Protocol) -> None:
        """Refuse (ProtocolError) any protocol field this code cannot honour as asked."""
        needs = {"hybrid": protocol.is_hybrid, "soc": protocol.soc,
                 "relax": protocol.task == "relax",
                 "constrained_occupations": protocol.excitation is not None}
        for cap, needed in needs.items():
            if needed and cap not in self.capabilities:
                raise ProtocolError(f"{self.name} cannot run {cap} steps "
                                    f"({protocol.name}: {protocol.label})")

    @abstractmethod
    def write_inputs(self, record: StructureRecord, protocol: Protocol, directory: Path,
                     previous: Path | None = None) -> None:
        """Write the code's inputs into `directory`. `previous`: the run directory of the
        step before it on the same system (the previous ladder step, or the previous point of
        a CC-diagram surface at another geometry), whose state the backend may reuse."""

    @abstractmethod
    def run(self, record: StructureRecord, protocol: Protocol, directory: Path,
            resources: dict[str, Any], log: Callable | None = None) -> None:
        """Run the code on the inputs write_inputs(record, protocol, directory) wrote; raise
        CalculationError on failure. Everything the launch needs comes from the arguments:
        which executable and how from `record` and `protocol`, its command lines and cores
        from `resources` (the worker's), never from a file of ours read back."""

    @abstractmethod
    def parse(self, directory: Path) -> ElectronicStructure:
        """The finished calculation in `directory` as an ElectronicStructure."""

    def relaxed_structure(self, directory: Path, record: StructureRecord
                          ) -> StructureRecord | None:
        """The relaxed structure a relax step left in `directory` (None if there is none)."""
        return None

    @classmethod
    def recognises(cls, path: Path) -> bool:
        """True if `path` (a file) is an output this backend can parse."""
        return path.name in cls.output_files

    @classmethod
    def parse_file(cls, path: Path, parse_projections: bool = False) -> ElectronicStructure:
        """Parse one output file this backend recognises."""
        raise ProtocolError(f"{cls.name} cannot parse {path}")

    @classmethod
    def transition_dipoles(cls, directory: Path, initial: list[int], final: list[int],
                           spin: int) -> TransitionDipoles:
        """Dipole matrix elements <i|e r|f> (e*A) between every band of `initial` and every
        band of `final` (0-based band indices, spin channel `spin`, Gamma point) from the wave
        functions a finished calculation in `directory` kept (capability "transition_dipole").
        Raises ParseError when the run kept no wave functions, AnalysisError for bands or a
        spin the run lacks; this default refuses."""
        raise ProtocolError(f"{directory}: {cls.name} runs give no transition dipoles here "
                            "(the backend lacks the transition_dipole capability)")

    @classmethod
    def soc_level_shifts(cls, directory: Path, spin: int, bands: list[int]
                         ) -> dict[int, tuple[float, float]]:
        """{band: (shift (eV), weight)}: the SOC shift of each collinear Kohn-Sham level of
        the finished run in `directory` (spin channel `spin`, Gamma), from its saved wave
        functions with second-variation SOC, and the weight of the SOC state taken as its
        continuation. This default refuses."""
        raise ProtocolError(f"{directory}: {cls.name} runs give no SOC level shifts here")

    def digest_settings(self, protocol: Protocol | None = None) -> dict[str, Any]:
        """The settings that identify a step: all but the output_settings, and for a step
        without an excitation all but the excitation_settings."""
        skip = set(self.output_settings)
        if protocol is not None and not protocol.excitation:
            skip |= set(self.excitation_settings)
        return {k: v for k, v in self.settings.items() if k not in skip}

    def valence_electrons(self, record: StructureRecord, protocol: Protocol) -> int | None:
        """Electrons the code will treat for `record`: the sum of the valences (Z valence) of
        the setups, POTCARs or pseudopotentials it will use for `protocol`, minus the record's
        charge (e). None: this code cannot count (then only an explicit spin_multiplicity turns
        spin on). Raises ProtocolError for an element it has no valence for."""
        return None

    def unpaired_electron(self, record: StructureRecord, protocol: Protocol) -> bool:
        """True when `record` needs collinear spin: its metadata spin_multiplicity when given
        (an explicit 1 keeps a run spin-unpolarised, e.g. a metal; the builders set it), else
        an odd count of this code's valence electrons (valence_electrons)."""
        given = record.metadata.get("spin_multiplicity")
        stored = record.metadata.get("valence_electrons")
        count = self.valence_electrons(record, protocol) if (given is None or stored) \
            else None
        # a multiplicity stored with another electron count (e.g. a record whose charge was
        # changed after it was built) is stale: the code's own count decides then
        if given is not None and not (stored and count is not None and int(stored) != count):
            return int(given) > 1
        return count is not None and count % 2 == 1

    def effective_protocol(self, record: StructureRecord, protocol: Protocol) -> Protocol:
        """The protocol the code actually runs (what the step hash records): the record's
        charge, and collinear spin for an unpaired electron (unpaired_electron: an odd
        electron count of any structure, unless its spin_multiplicity says otherwise) or an
        excitation. SOC steps stay noncollinear."""
        if protocol.charge != record.charge:
            protocol = protocol.with_(charge=record.charge)
        if protocol.spin_polarized or protocol.soc:
            return protocol
        if protocol.excitation or self.unpaired_electron(record, protocol):
            protocol = protocol.with_(spin_polarized=True)
        return protocol

    def describe(self, protocol: Protocol) -> dict[str, Any]:
        """What a report shows of this step's settings (code-specific names stay here)."""
        return {"code": self.name, **protocol.as_dict(), "settings": dict(self.settings)}

    # -- durable execution, shared by every backend --------------------------------------------
    def execute(self, record: StructureRecord, protocol: Protocol, run_dir: str | Path,
                resources: dict[str, Any] | None = None, previous: str | Path | None = None,
                log: Callable | None = None) -> tuple[ElectronicStructure, bool]:
        """(result, skipped): run one step durably in `run_dir`.

        A run directory holding a finished result for the same structure, protocol, code and
        settings is returned as it is (skipped=True): nothing finished is ever run twice."""
        from perovdefect.calcs.rundir import finished, mark_finished, step_digest
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        protocol = self.effective_protocol(record, protocol)
        self.check(record, protocol)
        digest = step_digest(record, protocol, self.name, self.digest_settings(protocol))
        done = finished(run_dir, digest)
        if done is not None:
            return done, True
        (run_dir / "result.json").unlink(missing_ok=True)  # a stale result must not pass
        t0 = time.perf_counter()
        self.write_inputs(record, protocol, run_dir, Path(previous) if previous else None)
        self.run(record, protocol, run_dir, dict(resources or {}), log)
        doc = self.parse(run_dir)
        doc.settings.setdefault("step", self.describe(protocol))
        # s; a code's own record of it (GPAW's runner) is kept
        doc.settings.setdefault("wall_time_s", round(time.perf_counter() - t0, 1))
        mark_finished(run_dir, digest, doc, {"code": self.name, "protocol": protocol.as_dict(),
                                             "settings": self.settings})
        return doc, False


def count_electrons(record: StructureRecord, valences: dict[str, float],
                    charge: int | None = None) -> int:
    """Electrons of `record` (e): the valence of each atom's element (a backend's setups,
    POTCARs or pseudopotentials) summed, minus `charge` (default: the record's). ProtocolError
    for a non-integer total or a charge that removes more electrons than there are."""
    charge = record.charge if charge is None else int(charge)
    total = sum(valences[s] for s in record.atoms.get_chemical_symbols())
    count = total - charge
    if abs(count - round(count)) > 1e-6:
        raise ProtocolError(f"{record.name}: {count:g} valence electrons is not a whole number "
                            f"(valences {valences})")
    if count < 0:
        raise ProtocolError(f"{record.name}: charge {charge:+d} removes more than its "
                            f"{total:g} valence electrons")
    return int(round(count))


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of the registered backends (entry-point group perovdefect.backends)."""
    return sorted(_entry_points())


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered under `name`."""
    eps = _entry_points()
    if name not in eps:
        raise ProtocolError(f"unknown code {name!r}; registered backends: "
                            f"{', '.join(sorted(eps)) or 'none'}")
    try:
        cls = eps[name].load()
    except Exception as exc:  # a broken plug-in must not crash the caller with a traceback
        raise ProtocolError(f"backend {name!r} ({eps[name].value}) cannot be loaded: "
                            f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ProtocolError(f"backend {name!r} ({eps[name].value}) is not a Backend subclass")
    return cls


def get_backend(name: str, **overrides: Any) -> Backend:
    """An instance of the backend `name` with its settings overridden (validated)."""
    return backend_class(name)(**overrides)


#: the code the embedded single-machine default (and the demo) runs calculations with
LOCAL_BACKEND = "gpaw"


def local_backend() -> type[Backend]:
    """The backend of the embedded default; a ProtocolError says why it cannot run here."""
    cls = backend_class(LOCAL_BACKEND)
    reason = cls.unavailable_reason()
    if reason:
        raise ProtocolError(reason)
    return cls


def registered_classes() -> list[type[Backend]]:
    """Every registered backend class that loads (a broken plug-in is skipped here; naming it
    with get_backend gives its error)."""
    out = []
    for name in available_backends():
        try:
            out.append(backend_class(name))
        except ProtocolError:
            continue
    return out


def backend_packages() -> list[str]:
    """Python distributions used by the registered backends (for provenance)."""
    return list(dict.fromkeys(p for cls in registered_classes() for p in cls.packages))


def backend_for_output(path: Path) -> type[Backend] | None:
    """The registered backend that recognises the output file `path`, if any."""
    return next((cls for cls in registered_classes() if cls.recognises(path)), None)


def backend_for_run(directory: str | Path, code: str | None = None) -> type[Backend]:
    """The registered backend of the finished run in `directory`: the code its step marker
    (perovdefect.calcs.rundir) names, else the backend recognising one of its output files,
    else `code` (e.g. the parsed document's); ProtocolError when none is known."""
    import json

    from perovdefect.calcs.rundir import MARKER
    directory = Path(directory)
    try:
        code = json.loads((directory / MARKER).read_text()).get("code") or code
    except (OSError, ValueError, AttributeError):
        # only the file names backends list as outputs (never read a WAVECAR to recognise it)
        names = dict.fromkeys(n for cls in registered_classes() for n in cls.output_files)
        found = next((cls for name in names if (directory / name).is_file()
                      for cls in [backend_for_output(directory / name)] if cls is not None),
                     None)
        if found is not None:
            return found
    if not code:
        raise ProtocolError(f"{directory}: no calculation of a registered backend found here")
    return backend_class(code)
