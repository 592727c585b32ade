"""The learned detail nets (FaceDet3D §3.2): DetH, D_Exp and RCAN (``nets``), their shipped weights
(``weights``), super-resolution inference (``sr``), serving them as a detail model (``serve``,
``deth_model``). Training lives in ``train/`` (not shipped in the extension zip)."""
