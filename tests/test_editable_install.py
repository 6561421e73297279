"""`scripts/setup.sh` installs starkit and the bundled plugins editable; `starkit new-plugin`
tells the user to `pip install -e .` the plugin it writes. Each of those projects keeps its
package in the project root, and says so (``package-dir = {"" = "."}``): setuptools then makes
the editable install a plain path entry. Without it setuptools installs an import hook and
prints a "Please be careful with folders in your working directory" warning block for every
project, three per setup run.

Each test builds the editable wheel of a copy of the real pyproject.toml around a stub package,
with the setuptools of this environment, the way pip's build step does."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

BUILD = """
import sys, setuptools.build_meta as backend
name = backend.build_editable(sys.argv[1])
print("WHEEL", name)
"""


def _build_editable(project: Path, out: Path) -> tuple[str, zipfile.ZipFile]:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD, str(out)],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    wheel = next(out.glob("*.whl"))
    return done.stdout + done.stderr, zipfile.ZipFile(wheel)


def _stub_project(tmp_path: Path, pyproject: Path, package: str) -> Path:
    project = tmp_path / "project"
    (project / package).mkdir(parents=True)
    shutil.copy(pyproject, project / "pyproject.toml")
    (project / "README.md").write_text("stub\n")
    (project / package / "__init__.py").write_text('__version__ = "0.0.1"\n')
    return project


def _assert_plain_path_entry(output: str, wheel: zipfile.ZipFile, project: Path) -> None:
    assert "Please be careful with folders" not in output, output
    assert "BuildBackendWarning" not in output and "editable mode is transitional" not in output, output
    names = wheel.namelist()
    assert not [n for n in names if n.endswith("_finder.py")], names  # no import hook
    pth = [n for n in names if n.endswith(".pth")]
    assert len(pth) == 1 and wheel.read(pth[0]).decode().strip() == str(project.resolve())


@pytest.mark.parametrize(("pyproject", "package"), [
    ("pyproject.toml", "starkit"),
    ("plugins/starkit-celeba/pyproject.toml", "starkit_celeba"),
    ("plugins/starkit-rafd/pyproject.toml", "starkit_rafd"),
])
def test_setup_script_projects_install_editable_without_a_warning(tmp_path, pyproject, package):
    project = _stub_project(tmp_path, ROOT / pyproject, package)
    output, wheel = _build_editable(project, tmp_path / "dist")
    _assert_plain_path_entry(output, wheel, project)


def test_a_new_plugin_installs_editable_without_a_warning(tmp_path):
    from starkit.scaffold import scaffold_plugin

    project = scaffold_plugin("street-scenes", tmp_path / "plugins")
    output, wheel = _build_editable(project, tmp_path / "dist")
    _assert_plain_path_entry(output, wheel, project)
