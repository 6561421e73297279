"""starkit plugin: the Radboud Faces Database (Langner et al., 2010), eight expressions.

Reads StarGAN's ``train/<expression>/`` folders or the release's raw files; see
:mod:`starkit_rafd.reader`.
"""

from __future__ import annotations

from starkit.hookspecs import hookimpl

from .reader import rafd_spec

STARKIT_CONTRACT = 1

__all__ = ["STARKIT_CONTRACT", "rafd_spec", "starkit_datasets"]


@hookimpl
def starkit_datasets():
    return [rafd_spec()]
