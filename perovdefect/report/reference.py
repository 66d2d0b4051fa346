"""Literature and measured reference values the report compares against (from DESIGN.md).

Measured or published numbers, not physical constants: each carries its source."""

EXPERIMENTAL_GAP_EV = {
    "Cs4PbBr6": (3.95, 3.95, "Cs4PbBr6 experimental gap ~3.95 eV (literature)"),
    "CsPbBr3": (2.24, 2.36, "CsPbBr3 experimental gap 2.24-2.36 eV (literature)"),
}
SEED_DFT = {"host_gap_eV": 3.9, "mid_gap_state_eV": 2.4,
            "source": "HSE06+SOC, perfect Cs4PbBr6 and one Br vacancy (the seed study)"}
SEED_PL = {"center_nm_range": (515.0, 520.0), "single_particle_fwhm_nm": 14.0,
           "ensemble_fwhm_nm": 23.0, "source": "single-particle and ensemble PL (seed study)"}
