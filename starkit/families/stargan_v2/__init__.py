"""The ``stargan-v2`` family (Choi, Uh, Yoo, Ha, CVPR 2020): one generator translates an image
into any of several *domains* in a style given by a latent code (through the mapping network)
or by a reference image (through the style encoder).

Readable top to bottom like the paper: :mod:`.networks` (generator, mapping network, style
encoder, multi-task discriminator), :mod:`.losses` (the objective), :mod:`.step` (one training
iteration), :mod:`.options` and :mod:`.presets`; :mod:`.translator`, :mod:`.samples` and the
official-weights import (:mod:`.import_weights`) are its side of the model-family seam. Domains
come from :mod:`starkit.domains`. Registered by :mod:`starkit.default_plugins.stargan_v2`;
importing this package costs no torch."""
