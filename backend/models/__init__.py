"""Morphable face models: the representation (``morphable``), the default model (``ict``), Basel Face
Model files and their conversion (``bfm/``), the FACS table (``facs``), emotion presets and the AU
rig (``emotions``), anatomical regions of the UV tile (``regions``). ``loader.load_model`` is the
entry point."""
