"""The plugin contract: every hook a plugin may implement.

Plugins are found through the ``starkit`` entry-point group; starkit's own features register
through these same hooks (see :mod:`starkit.plugins`). Hook implementations must be cheap to
import: import torch and other heavy libraries inside the objects they return, not at module
level, so that ``starkit --help`` stays fast.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("starkit")
hookimpl = pluggy.HookimplMarker("starkit")


@hookspec
def starkit_datasets():
    """Return a list of :class:`starkit.spec.DatasetSpec` this plugin provides.

    Dataset names are global: two plugins declaring the same name is an error that names both.
    """


@hookspec
def starkit_models():
    """Return a list of :class:`starkit.model_family.ModelFamily` this plugin provides
    (``stargan`` is built in; StarGAN v2 and other families plug in the same way)."""


@hookspec
def starkit_register_commands(cli):
    """Add commands to the ``starkit`` click group ``cli`` (``cli.command()(fn)`` or
    ``cli.add_command(cmd)``)."""
