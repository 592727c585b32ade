"""Expression wrinkles from skin mechanics: a film-on-substrate buckling model driven by the
surface strain of the expressed face (:mod:`backend.strain`), synthesised as a phase-coherent
stripe field in the face UV tile.

Output convention (the project's detail maps): one float32 channel, displacement along the
smooth surface's normal in **millimetres**, 0 = the smooth (blendshape) surface, positive =
outward; UV tile 0, row 0 = v = 1.

Mechanics
---------
Skin is treated as a stiff film (epidermis + dermis) bonded to a soft substrate
(hypodermis / SMAS). Under an in-plane compressive strain ε beyond the critical strain the
film buckles into sinusoidal wrinkles (Allen 1969; Chen & Hutchinson 2004; Genzer &
Groenewold 2006, "Soft matter with hard skin"):

    λ   = 2π h (E_f / 3E_s)^(1/3)          wavelength
    ε_c = ¼ (3E_s / E_f)^(2/3)              onset strain
    A   = h √(ε/ε_c − 1)                    amplitude (half peak-to-trough), ε > ε_c

(E_f, E_s plane-strain moduli.) Note λ = πh/√ε_c: the three quantities are tied, and an
onset of a few % forces λ ≈ 16–18 h.

Parameters (:class:`SkinParams`, documented there): E_f ≈ 150 kPa (in-vivo small-strain
modulus of the facial epidermis+dermis composite; published in-vivo values span ~30 kPa –
1 MPa), E_s ≈ 3 kPa (subcutaneous fat ~1–3 kPa, Geerligs 2008; Comley & Fleck 2010), ratio
50 → ε_c ≈ 3.8 %, λ ≈ 16 h. The film thickness is the *mechanically effective* bending
layer: with the full ultrasound epidermis+dermis thickness (0.6 mm eyelid … 1.5–2 mm
cheek/forehead) the model predicts λ of 1–3 cm, coarser than the spacings observed on faces
(crow's feet 2–4 mm, glabellar and nasal lines 3–6 mm, forehead lines 5–12 mm). Those
spacings are matched by an effective layer ≈ 0.3 × the full thickness (epidermis, papillary
and upper reticular dermis, the collagen-dense part that bends; the deep dermis acts as
substrate), so regional values are 0.3 × literature thicknesses: periorbital 0.22–0.3 mm,
nose 0.33, glabella 0.40, forehead 0.45, nasolabial / cheeks 0.45–0.5 mm (regional totals
after Chopra et al. 2015; approximate).

Age (years, default 35) changes the layers monotonically (:meth:`SkinParams.age_factors`): the
dermis thins by ~6 % per decade (Shuster et al. 1975) and stiffens while the substrate
softens (elastin loss, fat atrophy; Escoffier et al. 1989, Kruglikov & Scherer 2018 report
up to a 4-fold loss of wrinkling stability): the modulus ratio grows by 3 % per year
(×2.9 from 35 to 70). ε_c falls (halves by 70), λ grows slightly, and A = (λ/π)√(ε − ε_c)
grows for every ε: older skin wrinkles earlier and deeper.

Onset is smoothed by the skin's own relief acting as an imperfection of amplitude w0 (a few
µm at the wrinkle wavelength): the amplitude solves the imperfect pitchfork
a³ + (1 − x) a = x w0/h, a = A/h, x = ε/ε_c (:func:`imperfect_amplitude`), which tends to
h√(x − 1) above onset, to w0 x/(1 − x) below it, and is 0 without compression, so
wrinkles fade in over a few % of strain instead of switching on at a kink.

Mesh strain vs skin strain (``SkinParams.strain_transfer``, κ): the generic
:func:`wrinkle_field` takes the mesh's strain as the skin's (κ = 1: right for a synthetic
sheet). ICT-FaceKit's blendshapes compress the skin of the FACS regions by 15–25 % on average
(peaks 35–60 %, measured, see :data:`ICT_FACE_SKIN`) and the lower cheeks by 5–13 %;
taken as film strain, all of that would buckle into ~1 mm deep corrugations over most of the
face. The blendshape vertices are not material points (registration slides them over the
tissue) and soft tissue takes much of an in-plane shortening as thickening, so
:func:`wrinkle_map` uses κ = 0.3 (:data:`ICT_FACE_SKIN`): the onset then sits at ~13 % mesh
compression, and full-intensity AUs give peak-to-trough depths of ~0.4–2 mm at their
strongest spots (typically tenths of a mm). κ is a calibration, not a measured constant.

Existing lines (``person_detail``, mm, same UV convention): a pre-existing crease is an
imperfection of the film. Below onset an imperfection of depth w0 grows as w0/(1 − ε/ε_c)
(the classic imperfect-column amplification, capped); beyond onset the crease seeds the
buckling mode, so wrinkle troughs lock onto it (the phase solve below is pulled to φ = π on
creases) and it deepens by the capped amplification.

Pattern synthesis
-----------------
The wrinkle field is ``A(x) · g(φ(x))`` with a phase φ whose gradient on the expressed surface
is the wave vector k = (2π/λ) d̂ along the compression direction d̂ (crests run
perpendicular to the compression). In UV that is ``k_uv = (2π/λ) G d / √(dᵀ G d)`` with G
the metric of the expressed surface. The phase comes from a *stripe-pattern* solve
(Knöppel, Crane, Pinkall & Schröder 2015, "Stripe patterns on surfaces"): on a coarse UV
grid (``solve_size``, default 512, ~0.5 mm nodes) over the compressed area, a complex field
ψ minimises Σ_edges |ψ_j − T_ij ψ_i|², where T_ij advances the phase by k·Δuv and conjugates
where the line field's sign flips between nodes (4-neighbour grid edges, a real 2N×2N
system). Its smallest eigenvector (per connected area; inverse iteration) is the most
coherent wave field; because such eigenvectors can localise (tiny, with unconverged phase,
away from their least frustrated part), a few Ginzburg–Landau steps ψ ← (A + μI)⁻¹ μψ/|ψ|
(the same sparse LU) then lift it to unit modulus everywhere: smooth stripes wherever the
wave vectors are compatible, forks (phase dislocations, as real wrinkles have) where they are
not. The grid is the coarsest with ≥ 8 nodes per local wavelength (≤ ``solve_size``).
The fine map at any size then evaluates, per texel, the bilinear blend of the four nearby
nodes' predictions ψ_n·exp(i k_n·(x − x_n)) — a phase-exact upsampling, so a 1024² and a
4096² map show the same wrinkles. The blend's coherence and |ψ| fade the amplitude at forks.

The profile g(φ) is a cosine near onset and sharpens into narrow troughs and broad crests
as ε/ε_c grows (g = c − 2 sin^{2p}(φ/2), p from 1 to 2, zero mean, peak-to-trough 2), as
post-buckled films localise into creases. Seeded smooth noise varies the wavelength
(±6 %), the direction (±5° on the surface) and the depth along the crests (lognormal,
±40 %), so wrinkles come as segments of varying depth (``irregularity`` scales all three);
everything is deterministic given ``seed``.

Micro relief (pores, fine lines, band-limited skin texture) is added by
:mod:`backend.microrelief` when ``micro=True``.

Modules: ``mechanics`` (the film-on-substrate model and its parameters), ``stripes`` (the phase
solve and its evaluation), ``field`` (the map: :func:`field.wrinkle_map` for the face).
"""
