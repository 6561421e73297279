"""starkit: a plugin-style toolkit for multi-domain image-to-image translation (StarGAN family)."""

__version__ = "0.1.0"

#: Version of the plugin contract (hook signatures, dataset-spec fields, reader records).
#: A plugin may declare ``STARKIT_CONTRACT = N`` in its entry-point module; a plugin whose
#: major contract differs from this one is reported as incompatible and skipped.
CONTRACT_VERSION = 1
