"""The ``stargan`` family's side of the seam: its translator and its importer of the
reference implementation's weights (registered by :mod:`starkit.default_plugins.stargan`)."""
