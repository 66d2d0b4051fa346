"""Memory of analysing one recording, and a budget for many.

Reading is piece by piece already (PTU and legacy records memory-mapped, Photon-HDF5 read in
slices: `perovdefect.photons.io.iter_photons`), but the analysis is not: the Watkins-Yang
change-point search and the BIC levels run over all arrival times of the recording, and the
level-resolved g2 needs every photon's level from that segmentation, so one recording is held
whole. Measured peak resident memory of `analyze_file` (T3 PTU, two detectors, blinking
particle; /usr/bin/time -v): 0.29 GB at 1.05e6 photons, 0.42 GB at 4.0e6, 0.70 GB at 1.18e7
and 2.17 GB at 5.09e7 photons, i.e. 0.25 GB for Python and its libraries plus 33-38 bytes per
photon: the decoded photons (13 B: macrotime 8, microtime 4, channel 1), their arrival times
in ps (8 B), trace-bin index (8 B), change-point times (8 B) and level (1 B)
(tests/test_photon_memory.py measures it again).

Before `photons population` starts, each recording's photons are counted from its header
(PTU and legacy: records in the file, an upper bound; Photon-HDF5: the timestamps' length),
a recording whose analysis alone would exceed the budget is refused with a one-line error,
and the number of worker processes is lowered until the largest recordings, one per worker,
fit in it together.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: bytes per photon of one analysis (33-38 B measured, rounded up) and of the process itself
BYTES_PER_PHOTON = 40
PROCESS_BYTES = 300_000_000
#: share of the memory available at start that the population may use by default
DEFAULT_SHARE = 0.8
RECORD_BYTES = 4  # PTU / HT3 / PT3 records


def analysis_bytes(n_photons: int) -> int:
    """Peak resident memory (bytes) of one process analysing n_photons photons."""
    return PROCESS_BYTES + BYTES_PER_PHOTON * int(n_photons)


def available_bytes() -> int | None:
    """Memory available to new processes now (bytes; /proc/meminfo MemAvailable), None when
    unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget_bytes() -> int | None:
    """DEFAULT_SHARE of the available memory (None when unknown)."""
    avail = available_bytes()
    return None if avail is None else int(DEFAULT_SHARE * avail)


def photons_in(path: str | Path) -> int | None:
    """Photons of a raw file from its size or header, without decoding (PTU and legacy: the
    records in the file, an upper bound; Photon-HDF5: the first photon_data group's
    timestamps); None when the file cannot tell (the reader reports why later)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(8)
        if magic.startswith(b"\x89HDF"):
            import h5py
            with h5py.File(path, "r") as f:
                groups = sorted(k for k in f if k.startswith("photon_data"))
                return int(f[groups[0]]["timestamps"].shape[0]) if groups else None
        return path.stat().st_size // RECORD_BYTES
    except Exception:  # a damaged file: the analysis says what is wrong with it
        return None


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


def plan(photons: dict[str, int | None], workers: int, budget_bytes: int | None
         ) -> tuple[int, dict[str, str], str | None]:
    """(workers to use, refused recordings {key: reason}, note or None) for recordings with
    `photons` each (None: unknown, not checked) under `budget_bytes` (None: no budget)."""
    if budget_bytes is None:
        return workers, {}, None
    refused = {k: (f"its {n:.3g} photons need ~{gb(analysis_bytes(n))} to analyse (the whole "
                   f"recording is held: {BYTES_PER_PHOTON} bytes per photon + "
                   f"{gb(PROCESS_BYTES)}) but the memory budget is {gb(budget_bytes)}; raise "
                   "`max_memory_gb` on a machine with more memory")
               for k, n in photons.items() if n is not None
               and analysis_bytes(n) > budget_bytes}
    sizes = sorted((analysis_bytes(n) for k, n in photons.items()
                    if n is not None and k not in refused), reverse=True)
    use = workers
    while use > 1 and sum(sizes[:use]) > budget_bytes:
        use -= 1
    note = None
    if use < workers:
        note = (f"{use} worker(s) instead of {workers}: the {workers} largest recordings "
                f"together need ~{gb(sum(sizes[:workers]))}, more than the memory budget "
                f"{gb(budget_bytes)} (`max_memory_gb`)")
    return use, refused, note


def budget_from_gb(max_memory_gb: float | None) -> int | None:
    """The budget in bytes: --max-memory-gb when given, else the default share."""
    if max_memory_gb is not None and math.isfinite(max_memory_gb):
        return int(max_memory_gb * 1e9)
    return default_budget_bytes()
