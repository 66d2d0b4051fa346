"""Issue 22, part 1: pulsed T3 Photon-HDF5 (timestamps in sync periods, nanotimes with
nanotimes_specs, setup/laser_repetition_rates) gives the same g2(0), M and BX/X as the same
photons written as PTU; a file without a knowable repetition rate says so and --rep-rate-mhz
supplies it.

The Photon-HDF5 files are written here with h5py in the layout of the Photon-HDF5 0.5
specification (photon_data/timestamps, timestamps_specs/timestamps_unit, detectors, nanotimes,
nanotimes_specs/{tcspc_unit, tcspc_num_bins, tcspc_range}, setup/laser_repetition_rates), as
phconvert writes a PicoQuant T3 recording; when phconvert is installed one more test reads a
file written by phconvert itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from perovdefect.errors import PhotonFileError
from perovdefect.photons.analysis.pipeline import analyze_stream
from perovdefect.photons.io import info_by_pieces, iter_photons, read_photons
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.simulate import STEADY_STATES, SimulationParams, simulate

TCSPC_BITS = 15  # HydraHarp T3 microtime field


def write_photon_hdf5_t3(path, stream, rate_in_setup=True, tcspc_range=True,
                         timestamps_unit_s=None):
    """`stream` (T3) as a Photon-HDF5 0.5 file with h5py: timestamps in sync periods."""
    import h5py
    n_bins = 2**TCSPC_BITS
    with h5py.File(path, "w") as f:
        f.attrs["format_name"] = b"Photon-HDF5"
        f.attrs["format_version"] = b"0.5"
        f["description"] = b"simulated single-particle recording"
        f["acquisition_duration"] = float(stream.acquisition_time_s)
        g = f.create_group("photon_data")
        g["timestamps"] = stream.macrotime.astype(np.int64)
        g.create_group("timestamps_specs")["timestamps_unit"] = (
            timestamps_unit_s or stream.macrotime_resolution_s)
        g["detectors"] = stream.channel.astype(np.uint8)
        g["nanotimes"] = stream.microtime.astype(np.uint16)
        ns = g.create_group("nanotimes_specs")
        ns["tcspc_unit"] = stream.microtime_resolution_s
        ns["tcspc_num_bins"] = n_bins
        if tcspc_range:
            ns["tcspc_range"] = n_bins * stream.microtime_resolution_s
        setup = f.create_group("setup")
        setup["num_pixels"] = 2
        setup["lifetime"] = True
        if rate_in_setup:
            setup["laser_repetition_rates"] = np.array([stream.sync_rate_hz])
    return path


def _steady(M, seed, duration_s=6.0, **kw):
    return simulate(SimulationParams(duration_s=duration_s, n_emitters=M, states=STEADY_STATES,
                                     seed=seed, **kw))


@pytest.mark.parametrize("M", [1, 2, 3])
def test_t3_photon_hdf5_gives_the_same_g2_and_M_as_ptu(tmp_path, M):
    s = _steady(M, seed=40 + M)
    ptu = read_photons(write_ptu(tmp_path / "p.ptu", s))
    h5 = read_photons(write_photon_hdf5_t3(tmp_path / "p.h5", s))
    assert h5.sync_rate_hz == pytest.approx(ptu.sync_rate_hz, rel=1e-9)
    assert "setup/laser_repetition_rates" in h5.info()["sync_rate_source"]
    assert h5.n_microtime_bins == 2**TCSPC_BITS
    a = analyze_stream(ptu, biexponential=False)
    b = analyze_stream(h5, biexponential=False)
    assert b.g2.period_ns == pytest.approx(200.0)
    assert b.g2.g2_0 == pytest.approx(a.g2.g2_0, abs=1e-9)
    assert b.g2.n_emitters == pytest.approx(a.g2.n_emitters, abs=1e-9)
    assert b.levels[-1].tau_ns == pytest.approx(a.levels[-1].tau_ns, abs=1e-6)
    # the physics: steady emitters, g2(0) = 1 - 1/M
    assert abs(b.g2.n_emitters - M) < 3 * b.g2.n_emitters_err + 0.1, b.g2.interpretation


def test_bx_x_from_photon_hdf5_as_from_ptu(tmp_path):
    s = _steady(1, seed=7, duration_s=6.0, bx_x_ratio=0.2, excitation_N=0.3)
    a = analyze_stream(read_photons(write_ptu(tmp_path / "b.ptu", s)), excitation_N=0.3,
                       biexponential=False)
    b = analyze_stream(read_photons(write_photon_hdf5_t3(tmp_path / "b.h5", s)),
                       excitation_N=0.3, biexponential=False)
    assert b.g2.bx_x_ratio is not None
    assert b.g2.bx_x_ratio == pytest.approx(a.g2.bx_x_ratio, abs=1e-9)
    assert abs(b.g2.bx_x_ratio - 0.2) < 3 * b.g2.bx_x_ratio_err + 0.03


def test_rate_from_the_sync_period_timestamps_unit(tmp_path):
    """No setup/laser_repetition_rates, but the TCSPC window (2**15 x 4 ps = 131 ns) fits in
    one timestamp tick of 200 ns: the ticks are sync periods."""
    s = _steady(1, seed=3, duration_s=0.5, microtime_resolution_s=4e-12)
    h5 = read_photons(write_photon_hdf5_t3(tmp_path / "t.h5", s, rate_in_setup=False))
    assert h5.sync_rate_hz == pytest.approx(5e6)
    assert "timestamps_unit" in h5.info()["sync_rate_source"]


def test_rate_from_tcspc_range(tmp_path):
    """Neither a stated rate nor a tick that holds the TCSPC window (a 400 ns range, 200 ns
    ticks: the ticks are a clock, not sync periods): tcspc_range is taken as one laser period,
    and the info says so."""
    s = _steady(1, seed=3, duration_s=0.2)
    path = write_photon_hdf5_t3(tmp_path / "r.h5", s, rate_in_setup=False)
    import h5py
    with h5py.File(path, "a") as f:
        del f["photon_data/nanotimes_specs/tcspc_range"]
        f["photon_data/nanotimes_specs/tcspc_range"] = 400e-9
    h5 = read_photons(path)
    assert h5.sync_rate_hz == pytest.approx(2.5e6)
    assert "tcspc_range" in h5.info()["sync_rate_source"]


def test_unknown_rate_is_stated_and_rep_rate_supplies_it(tmp_path):
    s = _steady(2, seed=5, duration_s=3.0)
    path = write_photon_hdf5_t3(tmp_path / "u.h5", s, rate_in_setup=False, tcspc_range=False)
    h5 = read_photons(path)
    assert h5.sync_rate_hz is None
    assert h5.info()["sync_rate_source"].startswith("unknown")
    assert any("`rep_rate_hz`" in w for w in h5.header["warnings"])
    st = analyze_stream(h5, biexponential=False)
    assert st.g2.g2_0 is None and "repetition rate" in st.g2.interpretation
    given = read_photons(path, rep_rate_hz=5e6)
    assert given.info()["sync_rate_source"] == "given by the user"
    ref = analyze_stream(read_photons(write_ptu(tmp_path / "u.ptu", s)), biexponential=False)
    got = analyze_stream(given, biexponential=False)
    assert got.g2.n_emitters == pytest.approx(ref.g2.n_emitters, abs=1e-9)
    pieces = list(iter_photons(path, 10_000, rep_rate_hz=5e6))
    assert all(p.sync_rate_hz == 5e6 for p in pieces)
    with pytest.raises(PhotonFileError, match="disagrees"):
        read_photons(write_photon_hdf5_t3(tmp_path / "k.h5", s), rep_rate_hz=4e6)


def test_cli_info_and_analyze_with_rep_rate(tmp_path):
    from perovdefect.cli.main import main
    s = _steady(1, seed=11, duration_s=2.0)
    path = write_photon_hdf5_t3(tmp_path / "c.h5", s, rate_in_setup=False, tcspc_range=False)
    r = CliRunner().invoke(main, ["photons", "info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert "--rep-rate-mhz" in r.output
    r = CliRunner().invoke(main, ["photons", "info", str(path), "--json", "--rep-rate-mhz",
                                  "5"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sync_rate_hz"] == pytest.approx(5e6)
    r = CliRunner().invoke(main, ["photons", "analyze", str(path), "-o", str(tmp_path / "o"),
                                  "--rep-rate-mhz", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["files"][0]["n_emitters"] is not None
    assert info_by_pieces(path, 1000, rep_rate_hz=5e6)["sync_rate_hz"] == 5e6


def test_file_written_by_phconvert(tmp_path):
    """phconvert's own writer (the exchange format the issue names)."""
    phc = pytest.importorskip("phconvert")
    s = _steady(2, seed=21, duration_s=3.0)
    data = {
        "description": "simulated",
        "photon_data": {
            "timestamps": s.macrotime.astype(np.int64),
            "timestamps_specs": {"timestamps_unit": s.macrotime_resolution_s},
            "detectors": s.channel.astype(np.uint8),
            "nanotimes": s.microtime.astype(np.uint16),
            "nanotimes_specs": {"tcspc_unit": s.microtime_resolution_s,
                                "tcspc_num_bins": 2**TCSPC_BITS,
                                "tcspc_range": 2**TCSPC_BITS * s.microtime_resolution_s},
            "measurement_specs": {"measurement_type": "generic",
                                  "laser_repetition_rate": s.sync_rate_hz,
                                  "detectors_specs": {"spectral_ch1": np.array([0]),
                                                      "spectral_ch2": np.array([1])}}},
        "setup": {"num_pixels": 2, "num_spots": 1, "num_spectral_ch": 2,
                  "num_polarization_ch": 1, "num_split_ch": 1, "modulated_excitation": False,
                  "lifetime": True, "excitation_alternated": [False],
                  "excitation_cw": [False], "laser_repetition_rates": [s.sync_rate_hz]},
    }
    path = tmp_path / "phc.hdf5"
    phc.hdf5.save_photon_hdf5(data, h5_fname=str(path), overwrite=True, close=True,
                              warnings=False)
    h5 = read_photons(path)
    assert h5.sync_rate_hz == pytest.approx(5e6)
    a = analyze_stream(read_photons(write_ptu(tmp_path / "phc.ptu", s)), biexponential=False)
    b = analyze_stream(h5, biexponential=False)
    assert b.g2.n_emitters == pytest.approx(a.g2.n_emitters, abs=1e-9)
