"""Issue 5: every real file in ../shared/data/tcspc against REFERENCE.json, and bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from perovdefect.errors import AnalysisError, PhotonFileError
from perovdefect.photons.analysis.g2 import correlate
from perovdefect.photons.analysis.trace import intensity_trace
from perovdefect.photons.io import read_photons
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.simulate import SimulationParams, simulate
from tests.conftest import run_cli

FILES = ["hh400_v10.ht3", "hh400_v20.ht3", "hh400_v30_t2.ptu", "mt200_hh400_beads_t3.ptu",
         "photon_hdf5_min_v05.h5"]


@pytest.fixture(scope="module")
def reference(shared_data):
    return json.loads((shared_data / "tcspc" / "REFERENCE.json").read_text())


def _expected(entry: dict) -> dict:
    for key in ("ptufile", "tttrlib"):
        if "number_photons" in entry.get(key, {}):
            return entry[key]
    return entry


@pytest.mark.parametrize("name", FILES)
def test_reference_counts_and_trace(shared_data, reference, name):
    path = shared_data / "tcspc" / name
    stream = read_photons(path, timestamps_unit_s=5e-9 if name.endswith(".h5") else None,
                          allow_truncated=name == "hh400_v10.ht3")
    ref = _expected(reference["files"][name])
    assert len(stream) == ref["number_photons"]
    assert stream.photons_per_channel() == {int(k): v for k, v in
                                            ref["photons_per_channel"].items()}
    if "number_markers" in ref:
        assert stream.marker_channel.size == ref["number_markers"]
    if "number_records" in ref:
        assert stream.n_records == ref["number_records"]
    if "number_overflow_or_other" in ref:
        assert stream.n_overflows == ref["number_overflow_or_other"]
    macro = ref.get("macrotime_resolution_s", ref.get("timestamps_unit_s"))
    assert stream.macrotime_resolution_s == pytest.approx(macro, rel=1e-9)
    if ref.get("microtime_resolution_s") and stream.mode == "T3":
        assert stream.microtime_resolution_s == pytest.approx(ref["microtime_resolution_s"],
                                                              rel=1e-9)
    _, trace = intensity_trace(stream, reference["bin_width_s"])
    assert trace[:10].tolist() == ref["trace_10ms_all"]
    if "trace_10ms_per_channel" in ref:
        for ch, expected in ref["trace_10ms_per_channel"].items():
            _, tr = intensity_trace(stream, 0.01, channels=[int(ch)])
            assert tr[:10].tolist() == expected
    if "first_photon_time_s" in ref:
        assert stream.times_s()[0] == pytest.approx(ref["first_photon_time_s"], abs=2e-11) or \
            stream.macrotime[0] * stream.macrotime_resolution_s == pytest.approx(
                ref["first_photon_time_s"], rel=1e-9)


def test_markers_are_not_photons(shared_data):
    s = read_photons(shared_data / "tcspc" / "mt200_hh400_beads_t3.ptu")
    # line start/stop markers: bitmask values 4 and 8 (tttrlib's "channels" 4/8), 50 each
    values, counts = np.unique(s.marker_channel, return_counts=True)
    assert values.tolist() == [4, 8] and counts.tolist() == [50, 50]
    assert set(s.channel.tolist()) == {0, 1}


def test_v10_file_is_truncated_and_says_so(shared_data):
    path = shared_data / "tcspc" / "hh400_v10.ht3"
    with pytest.raises(PhotonFileError, match="truncated"):
        read_photons(path)
    s = read_photons(path, allow_truncated=True)
    assert "truncated" in s.header["warnings"][0]


def test_header_only_file(shared_data):
    path = shared_data / "tcspc" / "hh400_v20_header_only.ht2"
    with pytest.raises(PhotonFileError, match="hh400_v20_header_only.ht2"):
        read_photons(path)
    with pytest.raises(PhotonFileError, match="no photon records"):
        read_photons(path, allow_truncated=True)


def test_photon_hdf5_without_unit_needs_one(shared_data):
    with pytest.raises(PhotonFileError, match="timestamps_unit"):
        read_photons(shared_data / "tcspc" / "photon_hdf5_min_v05.h5")


def test_truncated_and_wrong_magic_ptu(shared_data, tmp_path):
    raw = (shared_data / "tcspc" / "mt200_hh400_beads_t3.ptu").read_bytes()
    cut = tmp_path / "cut.ptu"
    cut.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(PhotonFileError, match="cut.ptu"):
        read_photons(cut)
    wrong = tmp_path / "wrong.ptu"
    wrong.write_bytes(b"NOTAPTU!" + raw[8:])
    with pytest.raises(PhotonFileError, match="unknown TCSPC file format"):
        read_photons(wrong)
    tiny = tmp_path / "tiny.ptu"
    tiny.write_bytes(b"PQ")
    with pytest.raises(PhotonFileError, match="too short"):
        read_photons(tiny)


def test_t2_has_no_microtimes_and_single_detector_has_no_g2(shared_data):
    s = read_photons(shared_data / "tcspc" / "hh400_v30_t2.ptu")
    with pytest.raises(AnalysisError, match="no microtimes"):
        s.microtimes_ns()
    with pytest.raises(AnalysisError, match="two detectors"):
        correlate(s)


def test_simulated_ptu_round_trip_through_ptufile(tmp_path):
    import ptufile
    stream = simulate(SimulationParams(duration_s=2.0, n_emitters=2, seed=11))
    path = write_ptu(tmp_path / "sim.ptu", stream)
    with ptufile.PtuFile(path) as ptu:  # ptufile itself reads what we wrote
        assert ptu.number_photons == len(stream)
        assert ptu.syncrate == 5_000_000
    back = read_photons(path)
    assert np.array_equal(back.macrotime, stream.macrotime)
    assert np.array_equal(back.microtime, stream.microtime)
    assert np.array_equal(back.channel, stream.channel)


def test_legacy_picoharp_t3_markers(tmp_path):
    """A synthetic PT3 (PicoQuant's documented PicoHarp layout) with a marker on channel 15:
    the marker must not become a photon (tttrlib's mislabel)."""
    from perovdefect.photons.io.legacy import _PH_BIN
    hdr = np.zeros(1, _PH_BIN)
    hdr["Ident"], hdr["FormatVersion"] = b"PicoHarp 300", b"2.0"
    hdr["MeasurementMode"], hdr["Tacq"], hdr["InpRate0"] = 3, 1000, 10_000_000
    hdr["Resolution"], hdr["nRecords"] = 0.004, 4
    recs = [(1 << 28) | (100 << 16) | 5,          # photon, channel 1 -> detector 0
            (15 << 28) | (0 << 16) | 0,           # overflow (+65536 syncs)
            (15 << 28) | (2 << 16) | 7,           # marker 2
            (2 << 28) | (300 << 16) | 9]          # photon, channel 2 -> detector 1
    f = tmp_path / "x.pt3"
    f.write_bytes(hdr.tobytes() + struct.pack("<4I", *recs))
    s = read_photons(f)
    assert s.channel.tolist() == [0, 1] and s.marker_channel.tolist() == [2]
    assert s.macrotime.tolist() == [5, 65536 + 9] and s.microtime.tolist() == [100, 300]
    assert s.n_overflows == 1


def test_cli_info(shared_data):
    r = run_cli("photons", "info", str(shared_data / "tcspc" / "mt200_hh400_beads_t3.ptu"),
                "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["number_photons"] == 73787 and d["number_markers"] == 100
    assert d["photons_per_channel"] == {"0": 52833, "1": 20954}
    assert d["sync_rate_hz"] == 39999960 and d["macrotime_resolution_s"] == pytest.approx(2.5e-8)
    for key in ("record_type", "number_records", "number_overflows", "microtime_resolution_s",
                "acquisition_time_s"):
        assert key in d
    r = run_cli("photons", "info", str(shared_data / "tcspc" / "hh400_v20_header_only.ht2"))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_memmap_and_ptufile_paths_give_the_same_stream(tmp_path, monkeypatch):
    """The large-file paths (raw records memory-mapped; ptufile decoding into a memory-mapped
    temp file, split chunk by chunk) must give exactly what the in-memory path gives."""
    from perovdefect.photons.io import ptu as ptu_module
    stream = simulate(SimulationParams(duration_s=2.0, n_emitters=2, seed=12))
    path = write_ptu(tmp_path / "big.ptu", stream)
    whole = read_photons(path)
    monkeypatch.setattr(ptu_module, "MEMMAP_ABOVE_RECORDS", 0)
    for chunked in (ptu_module.read_ptu(path),
                    ptu_module.read_ptu(path, decoder="ptufile", chunk_records=10_007)):
        assert np.array_equal(chunked.macrotime, whole.macrotime)
        assert np.array_equal(chunked.microtime, whole.microtime)
        assert np.array_equal(chunked.channel, whole.channel)
        assert chunked.n_overflows == whole.n_overflows


@pytest.mark.parametrize("name", ["mt200_hh400_beads_t3.ptu", "hh400_v30_t2.ptu"])
def test_decoder_agrees_with_ptufile_on_real_files(shared_data, name):
    """perovdefect's one-pass decoder and ptufile's decode_records + split: the same photons,
    markers and overflow count, bit for bit (T3 with markers; T2)."""
    from perovdefect.photons.io.ptu import read_ptu
    path = shared_data / "tcspc" / name
    ours, ref = read_ptu(path), read_ptu(path, decoder="ptufile")
    for key in ("channel", "macrotime", "microtime", "marker_channel", "marker_macrotime"):
        a, b = getattr(ours, key), getattr(ref, key)
        assert (a is None and b is None) or np.array_equal(a, b), key
    assert ours.n_overflows == ref.n_overflows > 0
    assert ours.header["records_neither_photon_marker_nor_overflow"] == 0


@pytest.mark.parametrize("layout", range(6))
def test_decoder_agrees_with_ptufile_on_every_layout(layout):
    """Random record words of each PicoQuant layout (photons, overflows with counts, markers),
    decoded by ptufile (through its documented decode_records) and by perovdefect in many
    parallel blocks: same photons; reserved codes are neither photons nor markers here."""
    import ptufile

    from perovdefect.photons.io import records as R
    code = {R.PICOHARP_T3: 0x00010303, R.PICOHARP_T2: 0x00010203, R.HYDRAHARP_T3_V1: 0x00010304,
            R.HYDRAHARP_T3_V2: 0x01010304, R.HYDRAHARP_T2_V1: 0x00010204,
            R.HYDRAHARP_T2_V2: 0x01010204}[layout]
    rng = np.random.default_rng(layout)
    n = 60_000
    words = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    if layout in (R.PICOHARP_T3, R.PICOHARP_T2):  # routing 1..4 (T3) / 0..4 (T2) or 15
        route = rng.choice([1, 2, 3, 4, 15], n) if layout == R.PICOHARP_T3 else \
            rng.choice([0, 1, 2, 3, 4, 15], n)
        words = (words & 0x0FFFFFFF) | (route.astype(np.uint32) << 28)
        if layout == R.PICOHARP_T3:  # PicoHarp T3 marker bits are the low 4 of the dtime field
            words = np.where(route == 15, (words & 0xF000FFFF) | (words & 0xF0000), words)
    else:  # photons, overflows (code 63) and markers (1..15); no sync/reserved codes
        special = rng.random(n) < 0.3
        code_ = rng.choice([63, 1, 2, 4, 8], n).astype(np.uint32)
        words = np.where(special, (1 << 31) | (code_ << 25) | (words & 0x1FFFFFF),
                         words & 0x7FFFFFFF).astype(np.uint32)
        if layout == R.HYDRAHARP_T2_V2:  # ptufile wraps counts >= 128 (next test)
            ovf = special & (code_ == 63)
            words[ovf] = (words[ovf] & 0xFE000000) | (words[ovf] & 0x7F)

    class Header:  # ptufile.PtuFile.decode_records needs only these two attributes
        tags = {"TTResultFormat_TTTRRecType": code}
        is_t3 = layout in R.T3_LAYOUTS

    dec = ptufile.PtuFile.decode_records(Header(), words)
    photon = dec["channel"] >= 0
    marker = (dec["channel"] < 0) & (dec["marker"] > 0)
    ours = R.decode_records(words, layout, n_threads=3, block_records=997)
    assert np.array_equal(ours["channel"], dec["channel"][photon])
    assert np.array_equal(ours["macrotime"], dec["time"][photon].astype(np.int64))
    if Header.is_t3:
        assert np.array_equal(ours["microtime"], dec["dtime"][photon])
    assert np.array_equal(ours["marker_macrotime"], dec["time"][marker].astype(np.int64))
    mbits = dec["marker"][marker] & (0xF if layout == R.PICOHARP_T3 else 0xFF)
    assert np.array_equal(ours["marker_channel"], mbits)
    assert ours["n_overflows"] == n - photon.sum() - marker.sum() and ours["n_other"] == 0
    one_block = R.decode_records(words, layout, n_threads=1, block_records=10**9)
    assert all(np.array_equal(one_block[k], ours[k]) for k in ("macrotime", "channel"))


def test_hydraharp_t2_overflow_counts_above_127():
    """A HydraHarp v2 T2 overflow record counting 200 wraps (a 6.7 ms silence at 2**25 ps per
    wrap). Found here: ptufile 2026.2.6 multiplies the count in 32 bits, so the photon after it
    lands at (200 * 2**25) mod 2**32 + 5 ps; perovdefect's decoder gives 200 * 2**25 + 5 ps."""
    import ptufile

    from perovdefect.photons.io import records as R
    words = np.array([(1 << 31) | (63 << 25) | 200, 5], np.uint32)
    ours = R.decode_records(words, R.HYDRAHARP_T2_V2)
    assert ours["macrotime"].tolist() == [200 * 2**25 + 5] and ours["n_overflows"] == 1

    class Header:
        tags = {"TTResultFormat_TTTRRecType": 0x01010204}
        is_t3 = False
    theirs = ptufile.PtuFile.decode_records(Header(), words)["time"][1]
    if theirs != 200 * 2**25 + 5:  # documents the upstream bug while it lasts
        assert theirs == (200 * 2**25) % 2**32 + 5


def test_sync_and_reserved_records_are_not_photons():
    """HydraHarp T2 sync (special code 0) and reserved codes count as 'other', never photons
    (ptufile would call a sync record a photon of channel 0, the first detector's number)."""
    from perovdefect.photons.io import records as R
    words = np.array([(0 << 25) | 10, (1 << 31) | (0 << 25) | 20, (1 << 31) | (40 << 25) | 30,
                      (3 << 25) | 40], np.uint32)
    out = R.decode_records(words, R.HYDRAHARP_T2_V2)
    assert out["channel"].tolist() == [0, 3] and out["macrotime"].tolist() == [10, 40]
    assert out["n_other"] == 2 and out["n_overflows"] == 0


def test_legacy_picoharp_t2_overflow_and_markers(tmp_path):
    """Synthetic PT2 (PicoHarp T2, 4 ps): channel 15 carries overflows (low nibble 0) and markers
    (low nibble != 0); only channels 0-4 are photons."""
    from perovdefect.photons.io.legacy import _PH_BIN
    from perovdefect.photons.io.records import WRAP_PICOHARP_T2 as T2_WRAP_PH
    hdr = np.zeros(1, _PH_BIN)
    hdr["Ident"], hdr["FormatVersion"] = b"PicoHarp 300", b"2.0"
    hdr["MeasurementMode"], hdr["Tacq"], hdr["nRecords"] = 2, 1000, 4
    recs = [(0 << 28) | 1000,                      # photon on channel 0 at 1000 ticks
            (15 << 28) | 0,                        # overflow
            (15 << 28) | (5000 << 4) | 0b0010,     # marker 2
            (1 << 28) | 2000]                      # photon on channel 1
    f = tmp_path / "x.pt2"
    f.write_bytes(hdr.tobytes() + struct.pack("<4I", *recs))
    s = read_photons(f)
    assert s.mode == "T2" and s.macrotime_resolution_s == pytest.approx(4e-12)
    assert s.channel.tolist() == [0, 1] and s.marker_channel.tolist() == [2]
    assert s.macrotime.tolist() == [1000, T2_WRAP_PH + 2000] and s.n_overflows == 1
    with pytest.raises(AnalysisError, match="no microtimes"):
        s.microtimes_ns()


def test_legacy_ht2_records_on_a_real_header(shared_data, tmp_path):
    """The real HT2 2.0 header of the header-only file with synthetic HydraHarp v2 T2 records
    appended: an overflow record counts its wraps (2**25 each), sync records are not photons."""
    from perovdefect.photons.io.legacy import _HH_BIN, _HH_CHANNEL, _HH_TT
    from perovdefect.photons.io.records import WRAP_HYDRAHARP_T2_V2 as T2_WRAP_HH_V2
    raw = bytearray((shared_data / "tcspc" / "hh400_v20_header_only.ht2").read_bytes())
    hdr = np.frombuffer(bytes(raw), _HH_BIN, count=1)[0]
    nch = int(hdr["InpChansPresent"])
    tt_off = _HH_BIN.itemsize + nch * (_HH_CHANNEL.itemsize + 4)
    records = [(0 << 25) | 100,                    # photon, channel 0
               (1 << 31) | (63 << 25) | 3,         # overflow x3
               (1 << 31) | (0 << 25) | 50,         # sync record (not a photon)
               (2 << 25) | 200]                    # photon, channel 2
    body = struct.pack("<4I", *records)
    tt = np.frombuffer(bytes(raw), _HH_TT, count=1, offset=tt_off)[0].copy()
    tt["nRecords"], tt["ImgHdrSize"] = len(records), 0
    data = bytes(raw[:tt_off]) + tt.tobytes() + body
    f = tmp_path / "synthetic.ht2"
    f.write_bytes(data)
    s = read_photons(f)
    assert s.mode == "T2" and s.channel.tolist() == [0, 2]
    assert s.macrotime.tolist() == [100, 3 * T2_WRAP_HH_V2 + 200] and s.n_overflows == 1


def test_ptu_writer_splits_long_silences_into_overflow_records(tmp_path):
    """A gap of 2500 wraps needs three overflow records (1023 + 1023 + 454); ptufile must read
    the photons back at the same macrotimes."""
    from perovdefect.photons.io.ptu_write import T3_WRAP, encode_t3
    from perovdefect.photons.stream import PhotonStream
    macro = np.array([5, 6, 5 + T3_WRAP * 2500 + 7, 5 + T3_WRAP * 2501], dtype=np.int64)
    s = PhotonStream(channel=np.array([0, 1, 0, 1], np.int8), macrotime=macro,
                     microtime=np.array([10, 20, 30, 40], np.int32),
                     macrotime_resolution_s=2e-7, microtime_resolution_s=16e-12, mode="T3",
                     sync_rate_hz=5e6, acquisition_time_s=1.0)
    records = encode_t3(s)
    overflow = records[(records >> 25) == ((1 << 6) | 63)] & 0x3FF
    assert overflow.tolist() == [1023, 1023, 454, 1]
    back = read_photons(write_ptu(tmp_path / "gap.ptu", s))
    assert back.macrotime.tolist() == macro.tolist()
    assert back.microtime.tolist() == [10, 20, 30, 40]


@pytest.mark.parametrize("name", ["mt200_hh400_beads_t3.ptu", "hh400_v30_t2.ptu",
                                  "hh400_v20.ht3"])
def test_reading_piece_by_piece_gives_the_whole_file(shared_data, name):
    _pieces_equal_whole(shared_data / "tcspc" / name)


def test_photon_hdf5_piece_by_piece(shared_data):
    _pieces_equal_whole(shared_data / "tcspc" / "photon_hdf5_min_v05.h5", unit=5e-9, chunk=100)


def _pieces_equal_whole(path, unit=None, chunk=1000):
    """Files larger than memory: iter_photons decodes a file in pieces of `chunk` records
    (memory-mapped records, or HDF5 slices), carrying the overflow time over; the pieces join into exactly the stream
    that read_photons gives, and the piecewise info equals the whole-file info."""
    from perovdefect.photons.io import info_by_pieces, iter_photons
    whole = read_photons(path, unit)
    pieces = list(iter_photons(path, chunk_records=chunk, timestamps_unit_s=unit))
    assert len(pieces) == -(-whole.n_records // chunk) > 10
    assert sum(p.n_records for p in pieces) == whole.n_records
    for key in ("channel", "macrotime", "marker_channel", "marker_macrotime"):
        assert np.array_equal(np.concatenate([getattr(p, key) for p in pieces]),
                              getattr(whole, key)), key
    if whole.microtime is not None:
        assert np.array_equal(np.concatenate([p.microtime for p in pieces]), whole.microtime)
    info = info_by_pieces(path, chunk_records=chunk, timestamps_unit_s=unit)
    expect = whole.info()
    assert {k: v for k, v in info.items() if k != "warnings"} == expect


def test_cli_info_in_pieces(shared_data):
    path = str(shared_data / "tcspc" / "mt200_hh400_beads_t3.ptu")
    r = run_cli("photons", "info", path, "--json", "--chunk-records", "777")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["photons_per_channel"] == {"0": 52833, "1": 20954}


# ---------------------------------------------------------------------------------------------
# Issue 13: headers validated before they are trusted; only PerovDefectError escapes the readers;
# the photons CLI validates numbers and paths up front.

def _ptu_bytes(overrides: dict | None = None, drop: tuple[str, ...] = (),
               n_records: int | None = None, records: np.ndarray | None = None) -> bytes:
    """A small HydraHarp v2 T3 PTU (4 photons) with tags replaced (name -> (type, value)) or
    dropped; n_records overrides TTResult_NumberOfRecords."""
    from perovdefect.photons.io import ptu_write as W
    if records is None:
        records = np.array([(0 << 25) | (100 << 10) | 5, (1 << 25) | (200 << 10) | 9,
                            (0 << 25) | (300 << 10) | 700, (1 << 25) | (400 << 10) | 1000],
                           np.uint32)
    tags = {"File_GUID": (W.TY_ANSI, "{00000000-0000-0000-0000-000000000000}"),
            "Measurement_Mode": (W.TY_INT8, 3), "Measurement_SubMode": (W.TY_INT8, 0),
            "MeasDesc_Resolution": (W.TY_FLOAT8, 16e-12),
            "MeasDesc_GlobalResolution": (W.TY_FLOAT8, 2e-7),
            "MeasDesc_AcquisitionTime": (W.TY_INT8, 1000),
            "TTResult_SyncRate": (W.TY_INT8, 5_000_000),
            "TTResult_NumberOfRecords": (W.TY_INT8, records.size if n_records is None
                                         else n_records),
            "TTResultFormat_TTTRRecType": (W.TY_INT8, W.RT_HYDRAHARP2_T3),
            "TTResultFormat_BitsPerRecord": (W.TY_INT8, 32)}
    tags.update(overrides or {})
    body = b"".join(W._tag(k, typ, v) for k, (typ, v) in tags.items() if k not in drop)
    return (b"PQTTTR\0\0" + b"1.0.00\0\0" + body + W._tag("Header_End", W.TY_EMPTY, 0)
            + records.astype("<u4").tobytes())


def _ptu(tmp_path, name="x.ptu", **kw):
    path = tmp_path / name
    path.write_bytes(_ptu_bytes(**kw))
    return path


def test_synthetic_ptu_reads(tmp_path):
    s = read_photons(_ptu(tmp_path))
    assert s.mode == "T3" and s.channel.tolist() == [0, 1, 0, 1]
    assert s.sync_rate_hz == 5e6 and s.n_microtime_bins == 12500


@pytest.mark.parametrize("overrides, drop, match", [
    ({"TTResult_SyncRate": (0x10000008, 0)}, (), "TTResult_SyncRate = 0"),
    ({"TTResult_SyncRate": (0x10000008, -5)}, (), "TTResult_SyncRate"),
    ({"TTResultFormat_TTTRRecType": (0x10000008, 0x00ABCDEF)}, (), "unknown record type"),
    ({}, ("MeasDesc_GlobalResolution",), "MeasDesc_GlobalResolution"),
    ({}, ("Measurement_Mode",), "Measurement_Mode"),
    ({"MeasDesc_GlobalResolution": (0x4001FFFF, "fast")}, (), "MeasDesc_GlobalResolution"),
    ({"MeasDesc_GlobalResolution": (0x20000008, float("nan"))}, (), "MeasDesc_GlobalResolution"),
    ({"MeasDesc_GlobalResolution": (0x20000008, -2e-7)}, (), "MeasDesc_GlobalResolution"),
    ({"MeasDesc_Resolution": (0x20000008, 0.0)}, (), "MeasDesc_Resolution"),
    ({"MeasDesc_Resolution": (0x20000008, float("inf"))}, (), "MeasDesc_Resolution"),
    ({"Measurement_Mode": (0x10000008, 7)}, (), "Measurement_Mode = 7"),
    ({"Measurement_Mode": (0x10000008, 2)}, (), "contradicts record type"),
    ({"TTResult_NumberOfRecords": (0x10000008, -3)}, (), "negative record count"),
    ({"TTResultFormat_BitsPerRecord": (0x10000008, 16)}, (), "BitsPerRecord"),
    ({"MeasDesc_AcquisitionTime": (0x10000008, -1000)}, (), "MeasDesc_AcquisitionTime"),
])
def test_ptu_bad_header_fields_are_named(tmp_path, overrides, drop, match):
    path = _ptu(tmp_path, "bad.ptu", overrides=overrides, drop=drop)
    for call in (lambda: read_photons(path), lambda: list(_iter(path))):
        with pytest.raises(PhotonFileError, match=match) as info:
            call()
        assert "bad.ptu" in str(info.value)


def _iter(path, **kw):
    from perovdefect.photons.io import iter_photons
    return iter_photons(path, chunk_records=2, **kw)


def test_ptu_record_count_beyond_the_file(tmp_path):
    path = _ptu(tmp_path, "short.ptu", n_records=1000)
    with pytest.raises(PhotonFileError, match="truncated.*TTResult_NumberOfRecords"):
        read_photons(path)
    s = read_photons(path, allow_truncated=True)  # the 4 records present
    assert len(s) == 4 and any("truncated" in w for w in s.header["warnings"])
    assert sum(len(p) for p in _iter(path, allow_truncated=True)) == 4


def test_ptu_garbled_tag_ident_is_a_photon_file_error(tmp_path):
    """A byte flipped inside the ident of a required tag: the tag is missing, not a KeyError."""
    raw = bytearray(_ptu_bytes())
    i = raw.index(b"TTResult_SyncRate")
    raw[i:i + 8] = b"TTRes\xffl_"
    path = tmp_path / "garbled.ptu"
    path.write_bytes(bytes(raw))
    with pytest.raises(PhotonFileError, match="garbled.ptu.*TTResult_SyncRate"):
        read_photons(path)


def test_ptu_reader_works_without_ptufile_memmap_argument(tmp_path, monkeypatch):
    """ptufile >= 2026.6 has no `memmap` argument in PtuFile.read_records (and may lack `out` in
    decode_records): perovdefect must not depend on either."""
    import inspect

    import ptufile

    from perovdefect.photons.io import ptu as ptu_module
    path = write_ptu(tmp_path / "sim.ptu", simulate(SimulationParams(duration_s=1.0, seed=3)))
    whole = read_photons(path)
    original_decode = ptufile.PtuFile.decode_records

    def read_records(self):  # the new signature: no memmap
        raise AssertionError("perovdefect reads the raw records itself")

    def decode_records(self, records=None, /):  # no `out`
        return original_decode(self, records)

    monkeypatch.setattr(ptufile.PtuFile, "read_records", read_records)
    monkeypatch.setattr(ptufile.PtuFile, "decode_records", decode_records)
    monkeypatch.setattr(ptu_module, "MEMMAP_ABOVE_RECORDS", 0)
    assert "out" not in inspect.signature(ptufile.PtuFile.decode_records).parameters
    for s in (read_photons(path), ptu_module.read_ptu(path, decoder="ptufile")):
        assert np.array_equal(s.macrotime, whole.macrotime)
    assert sum(len(p) for p in _iter(path)) == len(whole)


def _ht3_with(shared_data, tmp_path, name, **fields):
    """hh400_v20.ht3 with time-tagging header fields (SyncRate, ImgHdrSize, nRecords) or main
    header fields (Resolution, MeasurementMode, Tacq) replaced."""
    from perovdefect.photons.io.legacy import _HH_BIN, _HH_CHANNEL, _HH_TT
    raw = (shared_data / "tcspc" / "hh400_v20.ht3").read_bytes()
    hdr = np.frombuffer(raw, _HH_BIN, count=1)[0].copy()
    tt_off = _HH_BIN.itemsize + int(hdr["InpChansPresent"]) * (_HH_CHANNEL.itemsize + 4)
    tt = np.frombuffer(raw, _HH_TT, count=1, offset=tt_off)[0].copy()
    for k, v in fields.items():
        (tt if k in _HH_TT.names else hdr)[k] = v
    data = hdr.tobytes() + raw[_HH_BIN.itemsize:tt_off] + tt.tobytes() + \
        raw[tt_off + _HH_TT.itemsize:]
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fields, match", [
    ({"SyncRate": 0}, "SyncRate"),
    ({"SyncRate": -40_000_000}, "SyncRate"),
    ({"ImgHdrSize": -1000}, "record offset|ImgHdrSize"),
    ({"ImgHdrSize": 10**9}, "ImgHdrSize"),
    ({"Resolution": float("nan")}, "Resolution"),
    ({"Resolution": -4.0}, "Resolution"),
    ({"MeasurementMode": 9}, "MeasurementMode"),
    ({"Tacq": -5}, "Tacq"),
])
def test_legacy_bad_header_fields_are_named(shared_data, tmp_path, fields, match):
    path = _ht3_with(shared_data, tmp_path, "bad.ht3", **fields)
    for call in (lambda: read_photons(path), lambda: list(_iter(path))):
        with pytest.raises(PhotonFileError, match=match) as info:
            call()
        assert "bad.ht3" in str(info.value)


def test_legacy_record_count_beyond_the_file(shared_data, tmp_path):
    path = _ht3_with(shared_data, tmp_path, "more.ht3", nRecords=10**12)
    with pytest.raises(PhotonFileError, match="truncated.*nRecords"):
        read_photons(path)
    assert len(read_photons(path, allow_truncated=True)) > 0


def test_picoharp_negative_and_nan_fields(tmp_path):
    from perovdefect.photons.io.legacy import _PH_BIN
    for field, value, match in (("nRecords", -4, "negative record count"),
                                ("InpRate0", 0, "InpRate0"),
                                ("Resolution", float("nan"), "Resolution"),
                                ("ImgHdrSize", -7, "ImgHdrSize")):
        hdr = np.zeros(1, _PH_BIN)
        hdr["Ident"], hdr["FormatVersion"] = b"PicoHarp 300", b"2.0"
        hdr["MeasurementMode"], hdr["Tacq"], hdr["InpRate0"] = 3, 1000, 10_000_000
        hdr["Resolution"], hdr["nRecords"] = 0.004, 1
        hdr[field] = value
        f = tmp_path / f"{field}.pt3"
        f.write_bytes(hdr.tobytes() + struct.pack("<I", (1 << 28) | 5))
        with pytest.raises(PhotonFileError, match=match):
            read_photons(f)


def _h5(tmp_path, name="x.h5", unit=5e-9, ts=(1, 5, 9), det=(0, 1, 0), nano=None,
        tcspc_unit=None):
    import h5py
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        g = f.create_group("photon_data")
        if ts is not None:
            g["timestamps"] = np.asarray(ts, None if isinstance(ts[0], float) else np.int64)
        if det is not None:
            g["detectors"] = np.asarray(det, np.uint8)
        if unit is not None:
            g.create_group("timestamps_specs")["timestamps_unit"] = unit
        if nano is not None:
            g["nanotimes"] = np.asarray(nano, np.uint16)
            if tcspc_unit is not None:
                g.create_group("nanotimes_specs")["tcspc_unit"] = tcspc_unit
    return path


@pytest.mark.parametrize("kw, match", [
    ({"unit": float("nan")}, "timestamps_unit"),
    ({"unit": -5e-9}, "timestamps_unit"),
    ({"unit": 0.0}, "timestamps_unit"),
    ({"unit": "5 ns"}, "timestamps_unit"),
    ({"ts": None}, "timestamps missing"),
    ({"ts": (1.5, 2.5, 3.5)}, "integer"),
    ({"det": (0, 1)}, "detectors has 2 values"),
    ({"nano": (1, 2, 3), "tcspc_unit": float("inf")}, "tcspc_unit"),
    ({"nano": (1, 2, 3), "tcspc_unit": -1e-12}, "tcspc_unit"),
])
def test_photon_hdf5_bad_units_and_datasets(tmp_path, kw, match):
    path = _h5(tmp_path, "bad.h5", **kw)
    with pytest.raises(PhotonFileError, match=match) as info:
        read_photons(path)
    assert "bad.h5" in str(info.value)


def test_photon_hdf5_user_unit_must_be_finite_positive(tmp_path):
    path = _h5(tmp_path, unit=None)
    assert len(read_photons(path, timestamps_unit_s=1e-9)) == 3
    for bad in (float("nan"), -1e-9, 0.0, float("inf")):
        with pytest.raises(PhotonFileError, match="timestamps_unit_s"):
            read_photons(path, timestamps_unit_s=bad)


def test_only_perovdefect_errors_escape(tmp_path, monkeypatch):
    """A failure no explicit check foresaw still leaves the public readers as a PhotonFileError
    naming the file (the guard), e.g. an OSError while decoding."""
    from perovdefect.errors import PerovDefectError
    from perovdefect.photons.io import info_by_pieces, iter_photons
    from perovdefect.photons.io import records as R
    path = _ptu(tmp_path, "boom.ptu")

    def boom(*a, **k):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(R, "decode_records", boom)
    for call in (lambda: read_photons(path), lambda: list(_iter(path)),
                 lambda: info_by_pieces(path)):
        with pytest.raises(PerovDefectError, match="boom.ptu.*ZeroDivisionError"):
            call()
    with pytest.raises(PhotonFileError, match="not a regular file"):
        read_photons(tmp_path)
    with pytest.raises(PhotonFileError, match="chunk_records"):
        list(iter_photons(path, chunk_records=0))


# --- CLI --------------------------------------------------------------------------------------

def _invoke(*args: str):
    """`perovdefect ARGS` in-process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from perovdefect.cli.main import main
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    res = runner.invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.stdout, res.stderr


def _assert_one_line_error(code: int, err: str, *names: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in names:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("args, names", [
    (["--emitters", "0"], ["--emitters"]),
    (["--emitters", "-2"], ["--emitters"]),
    (["--emitters", "two"], ["--emitters"]),
    (["--dark-emitters", "-1"], ["--dark-emitters"]),
    (["--background-cps", "-1"], ["--background-cps"]),
    (["--background-cps", "nan"], ["--background-cps"]),
    (["--excitation-N", "nan"], ["--excitation-N"]),
    (["--excitation-N", "0"], ["--excitation-N"]),
    (["--excitation-N", "-1"], ["--excitation-N"]),
    (["--excitation-N", "inf"], ["--excitation-N"]),
    (["--duration", "-1"], ["--duration"]),
    (["--duration", "0"], ["--duration"]),
    (["--duration", "abc"], ["--duration"]),
    (["--rep-rate-mhz", "0"], ["--rep-rate-mhz"]),
    (["--rep-rate-mhz", "0.5"], ["--rep-rate-mhz"]),
    (["--k-act", "-2"], ["--k-act"]),
    (["--seed", "-1"], ["--seed"]),
])
def test_cli_simulate_refuses_impossible_numbers(tmp_path, args, names):
    out = tmp_path / "sim.ptu"
    code, _, err = _invoke("photons", "simulate", "-o", str(out), *args)
    _assert_one_line_error(code, err, *names)
    assert not out.exists()


def test_cli_simulate_never_overwrites_without_force(tmp_path):
    out = tmp_path / "sim.ptu"
    code, _, err = _invoke("photons", "simulate", "-o", str(out), "--duration", "0.2")
    assert code == 0, err
    before = out.read_bytes()
    code, _, err = _invoke("photons", "simulate", "-o", str(out), "--duration", "0.3")
    _assert_one_line_error(code, err, str(out), "--force")
    assert out.read_bytes() == before
    code, _, err = _invoke("photons", "simulate", "-o", str(out), "--duration", "0.3",
                           "--force")
    assert code == 0, err and out.read_bytes() != before


def test_cli_simulate_no_photons_is_an_error(tmp_path):
    out = tmp_path / "none.ptu"
    code, _, err = _invoke("photons", "simulate", "-o", str(out), "--duration", "0.01",
                           "--excitation-N", "1e-12", "--background-cps", "0")
    _assert_one_line_error(code, err, "no photons")
    assert not out.exists()


def _unwritable_folder(tmp_path) -> Path:
    """A folder that cannot be written: chmod 555 for a normal user; as root (where permission
    bits do not stop writes) a folder 'below' a regular file, which cannot exist."""
    import os
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        d = tmp_path / "readonly"
        d.mkdir()
        d.chmod(0o555)
        return d
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return blocker / "out"


def test_cli_unwritable_output_folder(tmp_path):
    folder = _unwritable_folder(tmp_path)
    src = tmp_path / "in.ptu"
    src.write_bytes(_ptu_bytes())
    code, _, err = _invoke("photons", "analyze", str(src), "-o", str(folder))
    _assert_one_line_error(code, err, str(folder), "not writable")
    code, _, err = _invoke("photons", "simulate", "-o", str(folder / "x.ptu"), "--duration",
                           "0.1")
    _assert_one_line_error(code, err, str(folder), "not writable")


@pytest.mark.parametrize("args, names", [
    (["--bin-ms", "nan"], ["--bin-ms"]),
    (["--bin-ms", "0"], ["--bin-ms"]),
    (["--bin-ms", "-10"], ["--bin-ms"]),
    (["--gate-ns", "-1"], ["--gate-ns"]),
    (["--background-cps", "-5"], ["--background-cps"]),
    (["--background-cps", "inf"], ["--background-cps"]),
    (["--g2-window-ns", "0"], ["--g2-window-ns"]),
    (["--timestamps-unit", "nan"], ["--timestamps-unit"]),
    (["--timestamps-unit", "-1e-9"], ["--timestamps-unit"]),
    (["--thresholds", "5,,10"], ["--thresholds"]),
    (["--thresholds", "5,abc"], ["--thresholds"]),
    (["--thresholds", "nan"], ["--thresholds"]),
    (["--thresholds", "-3"], ["--thresholds"]),
    (["--excitation-N", "nan"], ["--excitation-N"]),
    (["--excitation-N", "0"], ["--excitation-N"]),
    (["--excitation-N", "1,2"], ["--excitation-N"]),
])
def test_cli_analyze_refuses_bad_numbers(tmp_path, args, names):
    src = tmp_path / "in.ptu"
    src.write_bytes(_ptu_bytes())
    out = tmp_path / "out"
    code, _, err = _invoke("photons", "analyze", str(src), "-o", str(out), *args)
    _assert_one_line_error(code, err, *names)
    assert not out.exists() or not any(out.iterdir())


def test_cli_missing_and_bad_input_files(tmp_path):
    missing = tmp_path / "missing.ptu"
    for cmd in (["info"], ["analyze", "-o", str(tmp_path / "o")]):
        code, _, err = _invoke("photons", *cmd, str(missing))
        _assert_one_line_error(code, err, "missing.ptu")
    bad = _ptu(tmp_path, "zero_sync.ptu", overrides={"TTResult_SyncRate": (0x10000008, 0)})
    for cmd in (["info"], ["analyze", "-o", str(tmp_path / "o2")]):
        code, _, err = _invoke("photons", *cmd, str(bad))
        _assert_one_line_error(code, err, "zero_sync.ptu", "TTResult_SyncRate")


def test_cli_errors_in_a_real_process(tmp_path):
    """The same checks through the installed entry point: stderr has one `error:` line and no
    traceback (the held-out corpus runs the console script)."""
    bad = _ptu(tmp_path, "neg_offset.ptu", n_records=10**6)
    r = run_cli("photons", "info", str(bad))
    _assert_one_line_error(r.returncode, r.stderr, "neg_offset.ptu", "truncated")
    r = run_cli("photons", "simulate", "-o", str(tmp_path / "s.ptu"), "--emitters", "0")
    _assert_one_line_error(r.returncode, r.stderr, "--emitters")


def test_cli_analyze_no_overwrite_and_json_without_nan(tmp_path):
    src = tmp_path / "sim.ptu"
    write_ptu(src, simulate(SimulationParams(duration_s=1.0, n_emitters=1, seed=5)))
    out = tmp_path / "res"
    code, stdout, err = _invoke("photons", "analyze", str(src), "-o", str(out), "--json")
    assert code == 0, err
    for text in [stdout] + [p.read_text() for p in out.glob("*.json")]:
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    stamp = (out / "summary.json").stat().st_mtime_ns
    code, _, err = _invoke("photons", "analyze", str(src), "-o", str(out))
    _assert_one_line_error(code, err, "--force", "exists")
    assert (out / "summary.json").stat().st_mtime_ns == stamp
    code, _, err = _invoke("photons", "analyze", str(src), "-o", str(out), "--force")
    assert code == 0, err


def test_json_safe_replaces_nan_and_inf():
    from perovdefect.cli.common import json_safe
    doc = {"a": float("nan"), "b": [1.0, float("inf"), np.float64("nan")],
           "c": np.array([1.0, np.nan]), "d": {"e": -np.inf, "f": 2}}
    assert json_safe(doc) == {"a": None, "b": [1.0, None, None], "c": [1.0, None],
                              "d": {"e": None, "f": 2}}
    json.dumps(json_safe(doc), allow_nan=False)


@pytest.mark.parametrize("kw, match", [
    ({"ts": (1, 9, 5)}, r"timestamps decreases at index 2"),
    ({"det": (0, 200, 1)}, r"detectors\[1\] = 200"),
])
def test_photon_hdf5_garbled_values(tmp_path, kw, match):
    """Unsorted timestamps or impossible detector numbers (a flipped byte in the data) are
    errors, not huge traces or negative channels later in the analysis."""
    path = _h5(tmp_path, "garbled.h5", **kw)
    for call in (lambda: read_photons(path), lambda: list(_iter(path))):
        with pytest.raises(PhotonFileError, match=match):
            call()
