"""starkit plugin: the CelebA face-attribute dataset (Liu et al., ICCV 2015).

Reads the release as torchvision or the StarGAN repository lay it out; see
:mod:`starkit_celeba.layout` and :func:`starkit_celeba.reader.read_celeba`.
"""

from __future__ import annotations

from starkit.hookspecs import hookimpl

from .reader import celeba_spec

STARKIT_CONTRACT = 1

__all__ = ["STARKIT_CONTRACT", "celeba_spec", "starkit_datasets"]


@hookimpl
def starkit_datasets():
    return [celeba_spec()]
