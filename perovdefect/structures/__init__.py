"""Structures: shipped crystals, supercells, Br vacancies, isolated cluster models and the
competing phases of the Cs-Pb-Br system."""

from perovdefect.structures.clusters import (build_cluster, crystal_cutout, cs4pbbr6_molecule,
                                             pbbr6_octahedron)
from perovdefect.structures.crystals import CRYSTALS, build_crystal, space_group
from perovdefect.structures.phases import PHASES, build_phase
from perovdefect.structures.record import StructureRecord, read_structure
from perovdefect.structures.supercells import build_supercell, image_distance
from perovdefect.structures.vacancies import build_vacancies, distinct_sites, remove_site

__all__ = ["CRYSTALS", "PHASES", "StructureRecord", "build_cluster", "build_crystal", "build_phase",
           "build_supercell", "build_vacancies", "crystal_cutout", "cs4pbbr6_molecule",
           "distinct_sites", "image_distance", "pbbr6_octahedron", "read_structure", "remove_site",
           "space_group"]
