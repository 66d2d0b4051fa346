"""The demo as a script: the same chain as `perovdefect demo`, through the Python API.

    .venv/bin/python examples/demo.py [OUTPUT_DIR]
"""

import sys

from perovdefect.demo import run_demo

if __name__ == "__main__":
    summary = run_demo(sys.argv[1] if len(sys.argv) > 1 else "demo-out", tier="pbe")
    state = [s for s in summary["in_gap_states"] if s["occupation"] > 0.5][0]
    print(f"occupied in-gap state: VBM + {state['energy_above_vbm_eV']:.2f} eV "
          f"({state['transition_nm']:.0f} nm); report: {summary['files']['html']}")
