"""Which creases each Action Unit makes, where, how many, how long, wide and deep.

One :class:`Family` per kind of expression line, after the FACS manual's appearance changes
(Ekman, Friesen & Hager 2002, as summarised in ``shared/docs/wrinkle_facts.md``):

- AU1 / AU2 (frontalis): horizontal forehead lines, central for AU1, lateral for AU2;
- AU4 (corrugator, procerus): vertical and oblique glabellar furrows;
- AU6 / AU7 (orbicularis oculi): crow's feet fanning from the eye corner, lines and a furrow
  below the lower lid;
- AU9 (levator labii alaeque nasi): lines across the nose root and down its sides ("bunny lines");
- AU10 / AU11 / AU12 / AU13 (and AU6 + AU12): the nasolabial furrow, deepened and raised;
- AU14 (buccinator): the dimple beside the lip corner;
- AU15 (depressor anguli oris): lines beyond and below the lip corners;
- AU17 (mentalis): the chin boss wrinkled like cobblestones;
- AU18 / AU22 / AU24 / AU28 (orbicularis oris): vertical lines on the upper lip.

Each family acts in its regions (``backend.models.regions``) and where the expression's strain
compresses the skin; lines run across the compression (the strain's line field), so combined
AUs interact as the strain says. Sizes are at full intensity of the family's AUs, interpolated
between ages 25, 45 and 70. docs/detail_maps.md ("Crease anatomy") has the table with every
figure's source, or the choice made where no measurement was found: the published data are
mostly grades and ranks, few millimetres. What the figures rest on:

- depth: Lemperle's scale correlates 87 % with replica profilometry and puts grade 1 (the
  shallowest visible line) under 0.2 mm (Lemperle et al. 2001, Plast Reconstr Surg 108:1735, via
  Bibb 2006); a fold still visible with the skin stretched is < 2 mm at grade 4 and > 2 mm at
  grade 5 (Tian 2018, OALib 5:e3757); the dermis is 0.76 mm (upper lid) to 1.97 mm (nose side)
  thick (Chopra et al. 2015, Aesthet Surg J 35:1007) and thins to about half under a deepening
  wrinkle before the wrinkle invaginates into the fat (Tsukahara et al. 2011, Arch Dermatol);
  crow's feet run deeper than forehead lines (Tamatsu et al. 2015, Clin Anat, via a news report);
- age: crow's-feet depth rises fast from 40 and levels off by 60 (Akazaki et al. 2002, Br J
  Dermatol); glabellar lines are not seen at rest before 40 (Luebberding, Krueger & Kerscher
  2014, Dermatol Surg 40:22); upper-lip line counts rise linearly with age and show from the 5th
  decade (Dermatology 2004;208:307); age correlation is strongest at the eye corners, then the
  mouth corners, the glabella, the nasolabial groove (Takema et al. 1997, Skin Res Technol);
- count and placement: the forehead's line of convergence lies at ~61 % of its height, on the
  2nd line from the top (Cotofana et al. 2020, Plast Reconstr Surg), so two or more lines are
  usual; the glabella's "11" (two vertical lines) is the commonest pattern, 75 % (n = 100);
  crow's feet come as lower, central and full fans in about a third of people each (PMID 25789814,
  n = 1,392); bunny lines are "two or more parallel grooves";
- spacing and length: the gap between neighbouring wrinkles shrinks as the muscle contracts
  (Hatzis 2004, Micron 35:201): spacing tightens with intensity here. No source gave mm for
  spacing, length or width: those are chosen from the regions' sizes and stated as choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AGES = (25.0, 45.0, 70.0)

# Lines that radiate from a point of the face (landmark indices, Multi-PIE 68, averaged), and how
# much that anatomy overrides the strain's own line direction there (0..1): crow's feet fan out
# from the eye's outer corner, upper-lip lines stand radially round the mouth, lines beyond the lip
# corners run away from them, bunny lines down the nose from its root. The blendshape rig's strain
# is smooth and nearly parallel over such small regions, so on its own it would give parallel lines.
RADIAL_FROM: dict[str, tuple[tuple[int, ...], float]] = {
    "crows_feet_R": ((36,), 0.85), "crows_feet_L": ((45,), 0.85),
    "perioral": ((51, 57), 0.8),
    "mouth_corner_R": ((48,), 0.6), "mouth_corner_L": ((54,), 0.6),
    "nose": ((27,), 0.5),
}


@dataclass(frozen=True)
class Family:
    name: str
    regions: tuple[str, ...]  # each region is traced on its own (sided regions apart)
    aus: tuple[int, ...]  # the AUs that make these lines; the strongest one's full compression is "full"
    spacing_mm: float  # between neighbouring lines at full intensity
    count: tuple[int, int, int]  # most lines per region at ages 25 / 45 / 70
    length_mm: tuple[float, float]  # shortest kept, longest traced
    width_mm: float  # valley width at half depth
    depth_mm: tuple[float, float, float]  # at full intensity, ages 25 / 45 / 70
    onset: tuple[float, float, float]  # fraction of full compression where lines begin, ages 25/45/70
    asymmetry: float = 0.0  # > 0: the valley's lateral side (away from the face's midline) is wider
    shape: str = "lines"  # "lines" or "pits" (short dimples: the chin's cobblestones)
    # > 0: the muscle compresses its whole region, whatever the rig's strain says: the region's
    # activation is raised to at least this fraction of its 90th percentile, and the line direction
    # where the rig barely strains is carried over from where it strains most (why: above FAMILIES).
    spread: float = 0.0

    def at_age(self, age: float) -> tuple[int, float, float]:
        """(most lines, depth mm, onset) at ``age``."""
        a = float(np.clip(age, AGES[0], AGES[-1]))
        count = int(round(np.interp(a, AGES, self.count)))
        return count, float(np.interp(a, AGES, self.depth_mm)), float(np.interp(a, AGES, self.onset))


# Why the forehead spreads: the frontalis lifts the brows by shortening over the whole forehead,
# and its lines stack from above the brows to near the hairline (the line of convergence at ~61 %
# of the forehead's height is the 2nd from the top: Cotofana et al. 2020). The blendshape rigs
# (ICT-FaceKit's brow shapes) move the brows and only the band just above them: on the mean ICT
# face 79 % of AU1+2's compression over the forehead region lies in its lowest 20 mm and 91 % in
# its lowest 25 mm, of 48 mm (measured on the working grid), room for two lines at the spacing.
# 0.8 is a choice (no source gives the compression profile over the forehead's height).

FAMILIES: tuple[Family, ...] = (
    Family("forehead", ("forehead",), (1, 2), spacing_mm=9.0, count=(2, 3, 5), length_mm=(15.0, 130.0),
           width_mm=0.9, depth_mm=(0.10, 0.22, 0.45), onset=(0.45, 0.35, 0.25), spread=0.8),
    Family("glabella", ("glabella",), (4,), spacing_mm=7.0, count=(1, 2, 3), length_mm=(6.0, 22.0),
           width_mm=1.0, depth_mm=(0.08, 0.22, 0.50), onset=(0.55, 0.40, 0.25)),
    Family("crows_feet", ("crows_feet_R", "crows_feet_L"), (6,), spacing_mm=3.5, count=(2, 4, 5),
           length_mm=(4.0, 18.0), width_mm=0.6, depth_mm=(0.08, 0.25, 0.45), onset=(0.45, 0.30, 0.20)),
    Family("infraorbital", ("infraorbital_R", "infraorbital_L"), (6, 7), spacing_mm=4.0, count=(1, 2, 3),
           length_mm=(6.0, 25.0), width_mm=0.8, depth_mm=(0.06, 0.14, 0.30), onset=(0.5, 0.4, 0.3)),
    Family("nose", ("nose",), (9,), spacing_mm=3.0, count=(2, 3, 4), length_mm=(4.0, 20.0), width_mm=0.6,
           depth_mm=(0.10, 0.18, 0.30), onset=(0.45, 0.35, 0.30)),
    Family("nasolabial", ("nasolabial_R", "nasolabial_L"), (9, 10, 11, 12), spacing_mm=6.0, count=(1, 1, 2),
           length_mm=(12.0, 45.0), width_mm=1.5, depth_mm=(0.30, 0.50, 0.80), onset=(0.35, 0.30, 0.20),
           asymmetry=0.45),
    Family("perioral", ("perioral",), (18, 22, 24, 28), spacing_mm=3.0, count=(0, 2, 6), length_mm=(3.0, 10.0),
           width_mm=0.5, depth_mm=(0.04, 0.10, 0.25), onset=(0.6, 0.45, 0.30)),
    Family("chin", ("chin",), (17,), spacing_mm=4.0, count=(3, 5, 7), length_mm=(1.5, 4.0), width_mm=1.4,
           depth_mm=(0.04, 0.08, 0.15), onset=(0.5, 0.4, 0.3), shape="pits"),
    Family("mouth_corner", ("mouth_corner_R", "mouth_corner_L"), (15,), spacing_mm=4.0, count=(1, 1, 2),
           length_mm=(5.0, 15.0), width_mm=0.8, depth_mm=(0.08, 0.18, 0.35), onset=(0.5, 0.4, 0.3)),
    Family("dimple", ("dimple_R", "dimple_L"), (14,), spacing_mm=6.0, count=(1, 1, 1), length_mm=(3.0, 10.0),
           width_mm=1.2, depth_mm=(0.20, 0.25, 0.30), onset=(0.4, 0.4, 0.4)),
)
