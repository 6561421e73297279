"""The plugin system: default plugins, in-process plugins, isolation of broken ones,
environment controls, and discovery of a real installed distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from starkit.catalog import datasets, get_dataset, UnknownNameError
from starkit.cli import cli
from starkit.hookspecs import hookimpl
from starkit.plugins import PluginError, PluginRegistry, PluginWarning
from starkit.spec import AttributeGroup, DatasetSpec


def _spec(name: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        groups=(AttributeGroup("mood", "onehot", ("calm", "angry")),),
        reader=lambda source, options: iter(()),
        description=f"{name} for tests",
    )


def plugin_providing(*names: str):
    class Plugin:
        @hookimpl
        def starkit_datasets(self):
            return [_spec(n) for n in names]

    return Plugin()


class Raising:
    @hookimpl
    def starkit_datasets(self):
        raise RuntimeError("boom inside the hook")


def test_in_process_plugin_is_listed(empty_registry):
    empty_registry.register(plugin_providing("moods"), "moods-plugin")
    found = datasets()
    assert list(found) == ["moods"] and found["moods"].plugin == "moods-plugin"
    info = {i.name: i for i in empty_registry.plugins()}
    assert info["moods-plugin"].hooks == ["starkit_datasets"] and not info["moods-plugin"].broken


def test_raising_hook_is_isolated(empty_registry):
    empty_registry.register(plugin_providing("moods"), "good")
    empty_registry.register(Raising(), "bad")
    with pytest.warns(PluginWarning, match="boom inside the hook"):
        found = datasets()
    assert list(found) == ["moods"]  # the good plugin still works
    info = {i.name: i for i in empty_registry.plugins()}
    assert info["bad"].broken and "RuntimeError" in info["bad"].error


def test_strict_mode_turns_breakage_into_an_error(empty_registry, monkeypatch):
    monkeypatch.setenv("STARKIT_STRICT_PLUGINS", "1")
    empty_registry.register(Raising(), "bad")
    with pytest.raises(PluginError, match="bad"):
        datasets()


def test_duplicate_dataset_names_both_plugins(empty_registry):
    empty_registry.register(plugin_providing("moods"), "first")
    empty_registry.register(plugin_providing("moods"), "second")
    with pytest.raises(PluginError) as err:
        datasets()
    assert "'first'" in str(err.value) and "'second'" in str(err.value) and "moods" in str(err.value)


def test_misspelt_hook_is_reported_not_silent(empty_registry):
    class Misspelt:
        @hookimpl
        def starkit_dataset(self):  # missing "s"
            return []

    with pytest.warns(PluginWarning, match="unknown hook"):
        empty_registry.register(Misspelt(), "typo")
    assert {i.name: i for i in empty_registry.plugins()}["typo"].broken


def test_incompatible_contract_is_skipped(empty_registry):
    module = types.ModuleType("future_plugin")
    module.STARKIT_CONTRACT = 99
    module.starkit_datasets = hookimpl(lambda: [_spec("future")])
    with pytest.warns(PluginWarning, match="contract 99"):
        empty_registry.register(module, "future")
    assert "future" not in datasets()


def test_wrong_return_type_marks_plugin_broken(empty_registry):
    class Wrong:
        @hookimpl
        def starkit_datasets(self):
            return ["not a spec"]

    empty_registry.register(Wrong(), "wrong")
    with pytest.warns(PluginWarning, match="expected DatasetSpec"):
        assert datasets() == {}


def test_unknown_dataset_lists_registered(empty_registry):
    empty_registry.register(plugin_providing("moods", "faces"), "p")
    with pytest.raises(UnknownNameError, match="faces, moods"):
        get_dataset("celeba")


def test_cli_lists_plugins_and_datasets_as_json(empty_registry):
    empty_registry.register(plugin_providing("moods"), "moods-plugin")
    runner = CliRunner()
    res = runner.invoke(cli, ["plugins", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows == [
        {
            "name": "moods-plugin",
            "distribution": None,
            "version": None,
            "hooks": ["starkit_datasets"],
            "builtin": False,
            "status": "ok",
            "error": None,
        }
    ]
    res = runner.invoke(cli, ["datasets", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["name"] == "moods" and row["plugin"] == "moods-plugin"
    assert row["groups"] == [{"name": "mood", "kind": "onehot", "attributes": ["calm", "angry"]}]


def test_cli_reports_duplicate_without_traceback(empty_registry):
    empty_registry.register(plugin_providing("moods"), "first")
    empty_registry.register(plugin_providing("moods"), "second")
    res = CliRunner().invoke(cli, ["datasets"])
    assert res.exit_code == 1
    assert "Error:" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------- real distributions
def _write_distribution(root: Path, dist: str, module: str, body: str) -> Path:
    src = root / dist
    (src / module).mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "0.3.1"

            [project.entry-points.starkit]
            {module} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    (src / module / "__init__.py").write_text(textwrap.dedent(body))
    return src


GOOD = """
from starkit.hookspecs import hookimpl
from starkit.spec import AttributeGroup, DatasetSpec

STARKIT_CONTRACT = 1

def _read(source, options):
    return iter(())

@hookimpl
def starkit_datasets():
    return [DatasetSpec(name="tinyfaces", groups=(AttributeGroup("mood", "onehot", ("calm", "angry")),),
                        reader=_read, description="installed for tests")]
"""

BROKEN = """
raise ImportError("this plugin is deliberately broken")
"""


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory) -> Path:
    """Build and install two real distributions (one working, one broken at import) with
    pip into a private target folder, so the test environment itself is left untouched."""
    root = tmp_path_factory.mktemp("dists")
    target = root / "site"
    for dist, module, body in (("starkit-tinyfaces", "starkit_tinyfaces", GOOD),
                               ("starkit-broken", "starkit_broken", BROKEN)):
        src = _write_distribution(root, dist, module, body)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target), str(src)],
            check=True,
        )
    return target


def _starkit(target: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STARKIT_")}
    environ.update(PYTHONPATH=str(target), **env)
    return subprocess.run([sys.executable, "-m", "starkit", *args], capture_output=True, text=True, env=environ)


@pytest.mark.pip
def test_installed_plugin_is_discovered_and_broken_one_isolated(installed_plugins):
    res = _starkit(installed_plugins, "plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["starkit_tinyfaces"]["distribution"] == "starkit-tinyfaces"
    assert rows["starkit_tinyfaces"]["version"] == "0.3.1"
    assert rows["starkit_tinyfaces"]["status"] == "ok"
    assert rows["starkit_broken"]["status"] == "broken"
    assert "deliberately broken" in rows["starkit_broken"]["error"]
    assert "deliberately broken" in res.stderr  # the warning reaches the user

    res = _starkit(installed_plugins, "datasets", "--json")
    assert res.returncode == 0, res.stderr
    assert "tinyfaces" in {r["name"] for r in json.loads(res.stdout)}


@pytest.mark.pip
def test_strict_mode_and_plugin_selection_with_installed(installed_plugins):
    res = _starkit(installed_plugins, "datasets", STARKIT_STRICT_PLUGINS="1")
    assert res.returncode != 0 and "deliberately broken" in res.stderr and "Traceback" not in res.stderr

    res = _starkit(installed_plugins, "plugins", "--json", STARKIT_LOAD_PLUGINS="starkit-tinyfaces")
    names = {r["name"] for r in json.loads(res.stdout)}
    assert "starkit_tinyfaces" in names and "starkit_broken" not in names

    res = _starkit(installed_plugins, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout
