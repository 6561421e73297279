"""The ``stargan`` family (Choi et al., CVPR 2018), readable top to bottom like the paper:
:mod:`.networks` (G and D), :mod:`.losses` (the objective), :mod:`.step` (one training
iteration), then :mod:`.options` (typed, grouped) and :mod:`.presets`; :mod:`.translator` and
the reference-weight import (:mod:`.reference`, :mod:`.import_weights`) are its side of the
model-family seam. :mod:`.parts` holds what the step adds to the paper (colour critic,
DiffAugment, moving average, cross-dataset targets), :mod:`.speed` how it is computed fast.
Registered by :mod:`starkit.default_plugins.stargan`; importing this package costs no torch."""
