"""Photon analysis of a real PicoQuant file (two-detector HydraHarp T3 PTU).

    .venv/bin/python examples/photons_real_file.py ../shared/data/tcspc/mt200_hh400_beads_t3.ptu

Equivalent CLI: perovdefect photons info FILE --json; perovdefect photons analyze FILE -o out/
"""

import sys

from perovdefect.photons.analysis.pipeline import analyze_stream
from perovdefect.photons.figures import decay_figure, g2_figure, save, trace_figure
from perovdefect.photons.io import read_photons

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tcspc/mt200_hh400_beads_t3.ptu"
    stream = read_photons(path)
    print(stream.info())
    stats = analyze_stream(stream, bin_width_s=0.05, g2_window_ns=100.0)
    print(stats.summary())
    print("overall lifetime (ns):", stats.decay_overall["mono"]["tau_ns"])
    save(trace_figure(stats), "trace.png")
    save(decay_figure(stats), "decays.png")
    save(g2_figure(stats), "g2.png")
    print("wrote trace.png, decays.png, g2.png")
