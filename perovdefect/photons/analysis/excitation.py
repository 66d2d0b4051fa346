"""Excitation level <N> = j * sigma (average absorbed photons per pulse per nanocrystal).

j: photons per cm^2 per pulse from average power, repetition rate, spot size and wavelength;
sigma: absorption cross-section (cm^2) from a molar extinction coefficient or from an
absorption coefficient and the particle volume. Constants from scipy.constants.
"""

from __future__ import annotations

import numpy as np
from scipy import constants

from perovdefect.errors import AnalysisError


def photon_fluence_per_pulse(power_W: float, rep_rate_hz: float, wavelength_nm: float,
                             spot_diameter_um: float) -> float:
    """j in photons / cm^2 / pulse for a flat-top spot of the given diameter."""
    for name, v in (("power", power_W), ("repetition rate", rep_rate_hz),
                    ("wavelength", wavelength_nm), ("spot diameter", spot_diameter_um)):
        if v <= 0:
            raise AnalysisError(f"{name} must be positive, got {v}")
    photon_energy_J = constants.h * constants.c / (wavelength_nm * 1e-9)
    photons_per_pulse = power_W / rep_rate_hz / photon_energy_J
    area_cm2 = np.pi * (spot_diameter_um * 1e-4 / 2) ** 2
    return float(photons_per_pulse / area_cm2)


def cross_section_from_extinction(epsilon_M_cm: float) -> float:
    """sigma (cm^2) = ln(10) * 1000 cm^3/L * epsilon (M^-1 cm^-1) / N_A."""
    if epsilon_M_cm <= 0:
        raise AnalysisError("molar extinction coefficient must be positive (M^-1 cm^-1)")
    return float(np.log(10) * 1e3 * epsilon_M_cm / constants.Avogadro)


def cross_section_from_absorption(alpha_cm: float, volume_nm3: float,
                                  local_field_factor: float = 1.0) -> float:
    """sigma (cm^2) = |f_LF|^2 * alpha (cm^-1) * V for a particle small against the wavelength."""
    if alpha_cm <= 0 or volume_nm3 <= 0:
        raise AnalysisError("absorption coefficient and volume must be positive")
    return float(local_field_factor * alpha_cm * volume_nm3 * 1e-21)


def excitation_level(power_W: float, rep_rate_hz: float, wavelength_nm: float,
                     spot_diameter_um: float, sigma_cm2: float) -> float:
    """<N> = j * sigma."""
    return photon_fluence_per_pulse(power_W, rep_rate_hz, wavelength_nm,
                                    spot_diameter_um) * sigma_cm2


def power_for_excitation(N: float, rep_rate_hz: float, wavelength_nm: float,
                         spot_diameter_um: float, sigma_cm2: float) -> float:
    """Average power (W) that gives <N>."""
    return N / excitation_level(1.0, rep_rate_hz, wavelength_nm, spot_diameter_um, sigma_cm2)
