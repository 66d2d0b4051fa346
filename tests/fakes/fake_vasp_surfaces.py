"""Harmonic potential-energy surfaces for the scripted fake `vasp` (tests only: VASP is licensed
and cannot run here). Standard library only: the fake runs under whatever python3 is first on
PATH.

The configuration (JSON, path in FAKE_VASP_SURFACES) lists systems; the one whose atoms (in
order) are those of POSCAR runs. A system names the atoms, a reference geometry R0
(cartesian, A), a displacement pattern u (cartesian A per amu^1/2 A, mass-weighted norm 1) and
the electronic states, each a surface along Q = <R - R0, u>_m:

    E(R) = e0_eV + 1/2 curvature (Q - q0)^2 + 1/2 perpendicular_curvature |x_perp|^2

(x = sqrt(m) (R - R0), minimum image; x_perp its part orthogonal to u; curvatures in
eV / (amu A^2), i.e. omega^2). A state is chosen by the electron count (NELECT, else the sum
of the configured ZVALs) and by whether the occupations are constrained to an excited state
(ISMEAR = -2 with FERWE/FERDO emptying a band below an occupied one). A relaxation (NSW > 0)
ends at the surface's minimum R0 + q0 u. Outputs: vasprun.xml in VASP's layout (generator,
incar, kpoints, parameters, atominfo, initial/final structures, one calculation per ionic
step with energies and eigenvalues/occupations), CONTCAR, OSZICAR, OUTCAR.
FAKE_VASP_RESET_OCCUPATIONS=1 makes the run drop FERWE/FERDO (as VASP 6 can after an ionic
step): ground-state occupations and the ground-state energy in the output.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

# -- inputs --------------------------------------------------------------------------------------


def values(text: str) -> list[float]:
    """An INCAR list ("1.0 1.0 0.0" or "2*1.0 1*0.0")."""
    out: list[float] = []
    for word in text.split():
        n, star, x = word.partition("*")
        out += [float(x)] * int(n) if star else [float(n)]
    return out


def read_poscar(path: Path) -> tuple[list[list[float]], list[str], list[list[float]]]:
    """(lattice rows A, symbols, cartesian positions A) of a VASP 5 POSCAR."""
    lines = path.read_text().splitlines()
    scale = float(lines[1].split()[0])
    lattice = [[scale * float(x) for x in lines[i].split()[:3]] for i in (2, 3, 4)]
    species, counts = lines[5].split(), [int(c) for c in lines[6].split()]
    symbols = [s for s, n in zip(species, counts) for _ in range(n)]
    i = 7
    if lines[i].strip()[:1].lower() == "s":  # selective dynamics
        i += 1
    direct = lines[i].strip()[:1].lower() == "d"
    pos = []
    for line in lines[i + 1:i + 1 + len(symbols)]:
        v = [float(x) for x in line.split()[:3]]
        pos.append(frac_to_cart(v, lattice) if direct else [scale * x for x in v])
    return lattice, symbols, pos


def frac_to_cart(f: list[float], lattice: list[list[float]]) -> list[float]:
    return [sum(f[j] * lattice[j][i] for j in range(3)) for i in range(3)]


def cart_to_frac(r: list[float], lattice: list[list[float]]) -> list[float]:
    a = lattice
    det = (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
           - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
           + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    inv = [[(a[(j + 1) % 3][(i + 1) % 3] * a[(j + 2) % 3][(i + 2) % 3]
             - a[(j + 1) % 3][(i + 2) % 3] * a[(j + 2) % 3][(i + 1) % 3]) / det
            for j in range(3)] for i in range(3)]  # inverse of the row matrix
    return [sum(r[i] * inv[i][j] for i in range(3)) for j in range(3)]


# -- the surfaces --------------------------------------------------------------------------------


def occupations(tags: dict, nelect: float, nbands: int, ispin: int) -> tuple[list, bool]:
    """([up, down] occupations, excited?) as the run would hold them."""
    reset = os.environ.get("FAKE_VASP_RESET_OCCUPATIONS") == "1"
    if int(tags.get("ISMEAR", "1")) == -2 and "FERWE" in tags and not reset:
        occ = [values(tags["FERWE"])]
        if ispin == 2:
            occ.append(values(tags.get("FERDO", tags["FERWE"])))
        excited = any(_promoted(ch) for ch in occ)
        return occ, excited
    n = int(round(nelect))
    if ispin == 1:
        ch = [1.0] * (n // 2) + ([0.5] if n % 2 else [])
        return [ch + [0.0] * (nbands - len(ch))], False
    up, down = (n + 1) // 2, n // 2
    return [[1.0] * up + [0.0] * (nbands - up), [1.0] * down + [0.0] * (nbands - down)], False


def _promoted(channel: list[float]) -> bool:
    occupied = [i for i, f in enumerate(channel) if f > 0.5]
    return bool(occupied) and any(f <= 0.5 for f in channel[:max(occupied)])


def choose_state(cfg: dict, nelect: float, excited: bool) -> dict:
    for state in cfg["states"]:
        if abs(state["nelect"] - nelect) < 1e-6 and bool(state["excited"]) == excited:
            return state
    raise SystemExit(f"fake vasp: no surface for NELECT={nelect:g}, excited={excited}")


def coordinate(cfg: dict, lattice, pos) -> tuple[float, float]:
    """(Q amu^1/2 A, |x_perp|^2 amu A^2) of the geometry `pos` (cartesian A)."""
    r0, u, m = cfg["reference_positions_A"], cfg["mode_A"], cfg["masses_amu"]
    x = []
    for ri, r0i, mi in zip(pos, r0, m):
        f = cart_to_frac([a - b for a, b in zip(ri, r0i)], lattice)
        f = [v - round(v) for v in f]  # minimum image
        x.append([math.sqrt(mi) * c for c in frac_to_cart(f, lattice)])
    ut = [[math.sqrt(mi) * c for c in ui] for ui, mi in zip(u, m)]
    q = sum(a * b for xi, ui in zip(x, ut) for a, b in zip(xi, ui))
    perp2 = sum((a - q * b) ** 2 for xi, ui in zip(x, ut) for a, b in zip(xi, ui))
    return q, perp2


def energy(cfg: dict, state: dict, lattice, pos) -> float:
    q, perp2 = coordinate(cfg, lattice, pos)
    return (state["e0_eV"] + 0.5 * state["curvature_eV_per_amu_A2"] * (q - state["q0_amu05_A"]) ** 2
            + 0.5 * cfg["perpendicular_curvature_eV_per_amu_A2"] * perp2)


def minimum(cfg: dict, state: dict) -> list[list[float]]:
    q0 = state["q0_amu05_A"]
    return [[a + q0 * b for a, b in zip(r, u)]
            for r, u in zip(cfg["reference_positions_A"], cfg["mode_A"])]


# -- outputs -------------------------------------------------------------------------------------


def _v(vals, fmt="{:18.10f}") -> str:
    return "<v>" + " ".join(fmt.format(x) for x in vals) + " </v>"


def _structure(name: str | None, lattice, pos) -> str:
    head = f'<structure name="{name}" >' if name else "<structure>"
    basis = "\n".join("     " + _v(row) for row in lattice)
    frac = "\n".join("    " + _v(cart_to_frac(r, lattice)) for r in pos)
    return (f"  {head}\n   <crystal>\n    <varray name=\"basis\" >\n{basis}\n    </varray>\n"
            f"   </crystal>\n   <varray name=\"positions\" >\n{frac}\n   </varray>\n"
            "  </structure>\n")


def _energy_block(e: float, indent: str = "  ") -> str:
    return (f"{indent}<energy>\n" + "".join(
        f'{indent} <i name="{n}"> {e:16.8f} </i>\n'
        for n in ("e_fr_energy", "e_wo_entrp", "e_0_energy")) + f"{indent}</energy>\n")


def _incar_xml(tags: dict) -> str:
    out = []
    for k, v in tags.items():
        if k in ("FERWE", "FERDO", "MAGMOM"):
            out.append(f'  <v name="{k}">' + " ".join(f"{x:.8f}" for x in values(v)) + "</v>")
        elif v.upper() in (".TRUE.", "TRUE", "T", ".FALSE.", "FALSE", "F"):
            flag = "T" if v.upper().lstrip(".")[0] == "T" else "F"
            out.append(f'  <i type="logical" name="{k}"> {flag}  </i>')
        else:
            try:
                int(v)
                out.append(f'  <i type="int" name="{k}">{v}</i>')
            except ValueError:
                try:
                    float(v)
                    out.append(f'  <i name="{k}">{v}</i>')
                except ValueError:
                    out.append(f'  <i type="string" name="{k}">{v}</i>')
    return " <incar>\n" + "\n".join(out) + "\n </incar>\n"


def _parameters(tags: dict, nelect: float, nbands: int, ispin: int) -> str:
    lhf = "T" if tags.get("LHFCALC", "F").upper().lstrip(".")[:1] == "T" else "F"
    nsw = int(tags.get("NSW", "0"))
    aexx = float(tags.get("AEXX", "0.25" if lhf == "T" else "0"))
    return (" <parameters>\n"
            '  <separator name="electronic" >\n'
            f'   <i type="int" name="NBANDS">{nbands:6d}</i>\n'
            f'   <i name="NELECT">{nelect:16.8f}</i>\n'
            '   <separator name="electronic smearing" >\n'
            f'    <i type="int" name="ISMEAR">{int(tags.get("ISMEAR", "1")):6d}</i>\n'
            "   </separator>\n"
            '   <separator name="electronic spin" >\n'
            f'    <i type="int" name="ISPIN">{ispin:6d}</i>\n'
            '    <i type="logical" name="LNONCOLLINEAR"> F  </i>\n'
            '    <i type="logical" name="LSORBIT"> F  </i>\n'
            "   </separator>\n"
            '   <separator name="electronic convergence" >\n'
            f'    <i type="int" name="NELM">{int(tags.get("NELM", "60")):6d}</i>\n'
            "   </separator>\n"
            "  </separator>\n"
            '  <separator name="ionic" >\n'
            f'   <i type="int" name="NSW">{nsw:6d}</i>\n'
            f'   <i type="int" name="IBRION">{int(tags.get("IBRION", "-1")):6d}</i>\n'
            f'   <i name="EDIFFG">{float(tags.get("EDIFFG", "-0.01")):16.8f}</i>\n'
            "  </separator>\n"
            '  <separator name="electronic exchange-correlation" >\n'
            '   <i type="string" name="GGA">--</i>\n'
            f'   <i type="logical" name="LHFCALC"> {lhf}  </i>\n'
            f'   <i name="AEXX">{aexx:16.8f}</i>\n'
            f'   <i name="HFSCREEN">{float(tags.get("HFSCREEN", "0")):16.8f}</i>\n'
            "  </separator>\n"
            " </parameters>\n")


def _atominfo(symbols: list[str], cfg: dict) -> str:
    types = list(dict.fromkeys(symbols))
    mass = dict(zip(cfg["symbols"], cfg["masses_amu"]))
    atoms = "".join(f"    <rc><c>{s}</c><c>{types.index(s) + 1:4d}</c></rc>\n" for s in symbols)
    kinds = "".join(
        f"    <rc><c>{symbols.count(s):4d}</c><c>{s}</c><c>{mass[s]:16.8f}</c>"
        f"<c>{cfg['zval'][s]:16.8f}</c><c>  PAW_PBE {s} fake                 </c></rc>\n"
        for s in types)
    return (f" <atominfo>\n  <atoms>{len(symbols):8d} </atoms>\n  <types>{len(types):8d} </types>\n"
            '  <array name="atoms" >\n   <dimension dim="1">ion</dimension>\n'
            '   <field type="string">element</field>\n   <field type="int">atomtype</field>\n'
            f"   <set>\n{atoms}   </set>\n  </array>\n"
            '  <array name="atomtypes" >\n   <dimension dim="1">type</dimension>\n'
            '   <field type="int">atomspertype</field>\n   <field type="string">element</field>\n'
            "   <field>mass</field>\n   <field>valence</field>\n"
            '   <field type="string">pseudopotential</field>\n'
            f"   <set>\n{kinds}   </set>\n  </array>\n </atominfo>\n")


def _levels(ch: list[float]) -> list[float]:
    """Eigenvalues (eV) rising with the band index, a 2 eV gap above the occupied count."""
    n_occupied = sum(1 for f in ch if f > 0.5)
    return [-6.0 + 3.0 * b / len(ch) + (2.0 if b >= n_occupied else 0.0) for b in range(len(ch))]


def _efermi(occ: list[list[float]]) -> float:
    return max(e for ch in occ for e, f in zip(_levels(ch), ch) if f > 0.5) + 0.01


def _eigenvalues(occ: list[list[float]]) -> str:
    sets = []
    for s, ch in enumerate(occ):
        eps = _levels(ch)
        rows = "".join(f"       <r> {e:10.4f} {f:9.4f} </r>\n" for e, f in zip(eps, ch))
        sets.append(f'     <set comment="spin {s + 1}">\n      <set comment="kpoint 1">\n'
                    f"{rows}      </set>\n     </set>\n")
    return ("  <eigenvalues>\n   <array>\n    <dimension dim=\"1\">band</dimension>\n"
            "    <dimension dim=\"2\">kpoint</dimension>\n"
            "    <dimension dim=\"3\">spin</dimension>\n"
            "    <field>eigene</field>\n    <field>occ</field>\n    <set>\n" + "".join(sets)
            + "    </set>\n   </array>\n  </eigenvalues>\n")


def _dos(nspins: int, efermi: float) -> str:
    """A total DOS on a coarse grid (flat: the analysis never reads it), as VASP lays it out."""
    grid = "".join(f"       <r> {efermi + de:10.4f} 0.0000 0.0000 </r>\n" for de in (-1, 0, 1))
    sets = "".join(f'     <set comment="spin {s + 1}">\n{grid}     </set>\n' for s in range(nspins))
    return (f'  <dos>\n   <i name="efermi"> {efermi:12.8f} </i>\n   <total>\n    <array>\n'
            '     <dimension dim="1">gridpoints</dimension>\n'
            '     <dimension dim="2">spin</dimension>\n     <field>energy</field>\n'
            "     <field>total</field>\n     <field>integrated</field>\n     <set>\n"
            f"{sets}     </set>\n    </array>\n   </total>\n  </dos>\n")


def _calculation(lattice, pos, e: float, occ=None) -> str:
    forces = "\n".join("   " + _v([0.0, 0.0, 0.0]) for _ in pos)
    return (" <calculation>\n  <scstep>\n" + _energy_block(e, "   ") + "  </scstep>\n"
            "  <scstep>\n" + _energy_block(e, "   ") + "  </scstep>\n"
            + _structure(None, lattice, pos)
            + f'  <varray name="forces" >\n{forces}\n  </varray>\n' + _energy_block(e)
            + (_eigenvalues(occ) + _dos(len(occ), _efermi(occ)) if occ is not None else "")
            + " </calculation>\n")


def write_vasprun(tags, cfg, symbols, lattice, steps, nelect, nbands, ispin, occ) -> None:
    """steps: [(cartesian positions, energy eV)] of the ionic steps, the last one final."""
    text = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <generator>\n'
            '  <i name="program" type="string">vasp </i>\n'
            '  <i name="version" type="string">6.4.2  </i>\n'
            '  <i name="subversion" type="string">fake (perovdefect tests) complex  serial </i>\n'
            ' </generator>\n' + _incar_xml(tags)
            + ' <kpoints>\n  <generation param="Gamma">\n'
            '   <v type="int" name="divisions">       1        1        1 </v>\n'
            '  </generation>\n  <varray name="kpointlist" >\n'
            '   <v>       0.00000000       0.00000000       0.00000000 </v>\n  </varray>\n'
            '  <varray name="weights" >\n   <v>       1.00000000 </v>\n  </varray>\n'
            ' </kpoints>\n' + _parameters(tags, nelect, nbands, ispin) + _atominfo(symbols, cfg)
            + _structure("initialpos", lattice, steps[0][0])
            + "".join(_calculation(lattice, p, e, occ if i == len(steps) - 1 else None)
                      for i, (p, e) in enumerate(steps))
            + _structure("finalpos", lattice, steps[-1][0]) + "</modeling>\n")
    Path("vasprun.xml").write_text(text)


def write_contcar(symbols, lattice, pos) -> None:
    species = list(dict.fromkeys(symbols))
    lines = ["fake vasp final geometry", "1.0"]
    lines += ["  " + " ".join(f"{x:.16f}" for x in row) for row in lattice]
    lines += ["  " + " ".join(species), "  " + " ".join(str(symbols.count(s)) for s in species),
              "Direct"]
    lines += ["  " + " ".join(f"{x:.16f}" for x in cart_to_frac(r, lattice)) for r in pos]
    Path("CONTCAR").write_text("\n".join(lines) + "\n")


def run(tags: dict) -> None:
    """One fake VASP run in the current directory on the configured surfaces."""
    lattice, symbols, pos = read_poscar(Path("POSCAR"))
    systems = json.loads(Path(os.environ["FAKE_VASP_SURFACES"]).read_text())["systems"]
    cfg = next((c for c in systems if c["symbols"] == symbols), None)
    if cfg is None:
        raise SystemExit("fake vasp: no configured system has the atoms of POSCAR")
    nelect = float(tags["NELECT"]) if "NELECT" in tags else float(
        sum(cfg["zval"][s] for s in symbols))
    ispin = int(tags.get("ISPIN", "1"))
    nbands = int(tags["NBANDS"]) if "NBANDS" in tags else int(nelect // 2 + len(symbols) // 2 + 8)
    occ, excited = occupations(tags, nelect, nbands, ispin)
    if any(len(ch) != nbands for ch in occ):
        raise SystemExit(f"fake vasp: FERWE/FERDO must list NBANDS = {nbands} values")
    state = choose_state(cfg, nelect, excited)
    steps = [(pos, energy(cfg, state, lattice, pos))]
    if int(tags.get("NSW", "0")) > 0:
        final = minimum(cfg, state)
        steps.append((final, energy(cfg, state, lattice, final)))
    write_vasprun(tags, cfg, symbols, lattice, steps, nelect, nbands, ispin, occ)
    write_contcar(symbols, lattice, steps[-1][0])
    e = steps[-1][1]
    Path("OSZICAR").write_text(f"   1 F= {e:.8E} E0= {e:.8E}  d E =0.000000E+00\n")
    Path("OUTCAR").write_text(" General timing and accounting informations for this job:\n")
