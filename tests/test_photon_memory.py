"""Memory of the photon analysis (perovdefect.photons.memory): the stated bytes per photon
against the peak resident memory measured in a fresh process, and the population's budget
(refused recordings, fewer workers) through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.photons import memory
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.population import PopulationStats
from perovdefect.photons.simulate import SEED_STATES, SimulationParams, simulate

# peak resident memory of this process: VmHWM (ru_maxrss would keep the forking parent's peak
# across exec, as getrusage(2) says)
CHILD = """
import re, sys
from pathlib import Path
from perovdefect.photons.analysis.pipeline import analyze_file
from perovdefect.photons.stats import AnalysisSettings

def peak():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024

s = AnalysisSettings(background_cps_per_detector=750.0)
analyze_file(sys.argv[1], s)  # imports, numba and first allocations
before = peak()
st = analyze_file(sys.argv[2], s)
print(before, peak(), st.info["number_photons"])
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small and a 2e6-photon recording of a blinking four-emitter particle."""
    d = tmp_path_factory.mktemp("memory")
    small = write_ptu(d / "small_N1.ptu", simulate(SimulationParams(
        duration_s=1.0, n_emitters=4, states=SEED_STATES, seed=1)))
    big = write_ptu(d / "big_N1.ptu", simulate(SimulationParams(
        duration_s=20.0, n_emitters=4, states=SEED_STATES, seed=2)))
    return small, big


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_bytes_per_photon_bound_the_measured_peak(files):
    small, big = files
    r = subprocess.run([sys.executable, "-c", CHILD, str(small), str(big)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    before, after, n = map(int, r.stdout.split())
    assert n > 1_500_000
    per_photon = (after - before) / n
    # measured 33-38 bytes per photon (1e6-5e7 photons): the stated 40 is an upper bound
    assert 25 < per_photon <= memory.BYTES_PER_PHOTON, per_photon
    assert after <= memory.analysis_bytes(n)
    assert memory.photons_in(big) >= n  # records in the file: an upper bound


def test_plan_refuses_and_lowers_workers():
    n8, n7 = 100_000_000, 10_000_000
    workers, refused, note = memory.plan({"a": n8, "b": n7, "c": None}, 2, 3_000_000_000)
    assert workers == 2 and note is None and set(refused) == {"a"}
    assert "4.3 GB" in refused["a"] and "`max_memory_gb`" in refused["a"]
    workers, refused, note = memory.plan({"a": n8, "b": n8}, 2, 8_000_000_000)
    assert workers == 1 and not refused and "1 worker(s) instead of 2" in note
    assert memory.plan({"a": n8}, 2, None) == (2, {}, None)


def test_population_refuses_what_does_not_fit(files, tmp_path):
    small, big = files
    out = tmp_path / "pop"
    budget_gb = memory.analysis_bytes(memory.photons_in(big)) / 1e9 - 0.01
    r = CliRunner().invoke(main, ["photons", "population", str(small), str(big), "-o", str(out),
                                  "--max-memory-gb", f"{budget_gb:.3f}"])
    assert r.exit_code == 0, r.output
    doc = PopulationStats.from_json(out / "population.json")
    assert list(doc.failed) == [str(big)] and "memory budget" in doc.failed[str(big)]
    assert "big_N1.ptu" in r.stderr and "Traceback" not in r.output
    rows = {row.particle: row for row in doc.particles}
    assert rows["small_N1"].photons and rows["big_N1"].photons is None
