"""Basel Face Model files users bring (2009 .mat, 2017/2019 .h5, FaceWarehouse expressions), converted
once onto the default model's rig and UV layout and cached (docs/bfm.md)."""
