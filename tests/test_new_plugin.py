"""``starkit new-plugin``: name rules, never overwriting, valid generated files, generated tests
that pass, and a real round trip: scaffold, pip install into this environment, discover,
ingest with ``starkit add-dataset``, run the plugin's own tests, uninstall."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import starkit.scaffold as scaffold
from starkit import CONTRACT_VERSION
from starkit.catalog import get_dataset
from starkit.cli import cli
from starkit.scaffold import LAYOUTS, ScaffoldError, plugin_names, scaffold_plugin

REPO = Path(__file__).resolve().parents[1]
EXPECTED_FILES = {"README.md", "pyproject.toml", "{module}/__init__.py", "tests/make_fixture.py", "tests/test_reader.py"}


def _clean_env() -> dict[str, str]:
    """This environment without STARKIT_* settings, so subprocesses see the defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STARKIT_")}


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True)


def _import_from(path: Path, name: str):
    """Import a generated module from its file without putting its folder on sys.path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- names
def test_names_derive_from_the_dataset_name():
    names = plugin_names("street-scenes")
    assert (names.dataset, names.distribution, names.module) == (
        "street-scenes", "starkit-street-scenes", "starkit_street_scenes",
    )


@pytest.mark.parametrize(
    "name", ["", "1faces", "-faces", "faces-", "street--scenes", "Faces", "my_faces", "my faces", "dätä", "a.b", "a/b"]
)
def test_invalid_names_say_what_is_allowed_and_write_nothing(tmp_path, name):
    with pytest.raises(ScaffoldError, match="lower-case letters and digits, starting with a letter"):
        scaffold_plugin(name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["class", "import", "lambda"])
def test_python_keywords_are_refused(tmp_path, name):
    with pytest.raises(ScaffoldError, match="Python keyword"):
        scaffold_plugin(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_layout_and_unprintable_description_are_refused(tmp_path):
    with pytest.raises(ScaffoldError, match="imagefolder, attribute-table"):
        scaffold_plugin("faces", tmp_path, layout="csv")
    with pytest.raises(ScaffoldError, match="printable"):
        scaffold_plugin("faces", tmp_path, description="bell\x07")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- never overwrite, never half-made
@pytest.mark.parametrize("content", [True, False], ids=["with-files", "empty"])
def test_an_existing_target_is_never_overwritten(tmp_path, content):
    target = tmp_path / "starkit-faces"
    target.mkdir()
    if content:
        (target / "mine.txt").write_text("keep me")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold_plugin("faces", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["starkit-faces"]  # no staging left behind
    assert [p.name for p in target.iterdir()] == (["mine.txt"] if content else [])
    if content:
        assert (target / "mine.txt").read_text() == "keep me"


def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    real_write, written = scaffold._write, []

    def write_then_fill_the_disk(path, text):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real_write(path, text)

    monkeypatch.setattr(scaffold, "_write", write_then_fill_the_disk)
    with pytest.raises(ScaffoldError, match="No space left on device"):
        scaffold_plugin("faces", tmp_path)
    assert written and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- generated files
@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_files_are_valid(tmp_path, layout, empty_registry):
    description = 'Faces with "quotes", a \\ and ünïcode'
    root = scaffold_plugin("my-faces", tmp_path, layout=layout, description=description)
    assert root == tmp_path / "starkit-my-faces"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files == {f.format(module="starkit_my_faces") for f in EXPECTED_FILES}

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "starkit-my-faces"
    assert project["project"]["description"] == description
    assert project["project"]["dependencies"] == ["starkit"]
    assert project["project"]["entry-points"]["starkit"] == {"my-faces": "starkit_my_faces"}
    assert project["tool"]["setuptools"]["packages"] == ["starkit_my_faces"]
    for path in root.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")

    module = _import_from(root / "starkit_my_faces" / "__init__.py", f"scaffolded_{layout.replace('-', '_')}")
    assert module.STARKIT_CONTRACT == CONTRACT_VERSION
    empty_registry.register(module, "my-faces")
    spec = get_dataset("my-faces")
    assert spec.description == description
    assert [g.kind for g in spec.groups] == (["onehot"] if layout == "imagefolder" else ["binary"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_tests_pass_before_installing(tmp_path, layout):
    root = scaffold_plugin("my-faces", tmp_path, layout=layout)
    result = _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


# ---------------------------------------------------------------- command line
def test_cli_creates_the_plugin_and_reports_errors_plainly(tmp_path, registry):
    runner = CliRunner()
    res = runner.invoke(cli, ["new-plugin", "faces", "--out", str(tmp_path), "--layout", "attribute-table"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "starkit-faces" / "starkit_faces" / "__init__.py").is_file()
    assert "ATTRIBUTES" in res.output and "pip install -e" in res.output

    res = runner.invoke(cli, ["new-plugin", "faces", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "already exists" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["new-plugin", "Bad_Name", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "invalid plugin name 'Bad_Name'" in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["starkit-faces"]


def test_cli_warns_when_the_dataset_name_is_taken(tmp_path, empty_registry):
    empty_registry.register(_import_from(scaffold_plugin("faces", tmp_path / "a") / "starkit_faces" / "__init__.py",
                                         "scaffolded_taken"), "first-faces")
    res = CliRunner().invoke(cli, ["new-plugin", "faces", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "plugin 'first-faces' already provides a dataset named 'faces'" in res.stderr


# ---------------------------------------------------------------- packaging and the real round trip
def _pip(*args: str | Path) -> None:
    result = _run(sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.pip
def test_templates_ship_in_starkit_wheel(tmp_path):
    """The package-data rule in pyproject.toml really puts every template into the wheel."""
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(REPO / "starkit", src / "starkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path / "dist", src)
    (wheel,) = (tmp_path / "dist").glob("starkit-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    templates = REPO / "starkit" / "scaffold" / "templates"
    expected = {p.relative_to(REPO).as_posix() for p in templates.rglob("*.tmpl")}
    assert len(expected) >= 9 and expected <= shipped


@pytest.fixture(params=LAYOUTS)
def installed_plugin(request, tmp_path):
    """A scaffolded plugin pip-installed (not editable) into the running environment, and
    uninstalled afterwards even when the install or the test fails."""
    name = f"roundtrip-{request.param}"
    root = scaffold_plugin(name, tmp_path / "plugins", layout=request.param)
    request.addfinalizer(lambda: _pip("uninstall", "--yes", plugin_names(name).distribution))
    _pip("install", "--quiet", "--no-deps", "--no-build-isolation", root)
    return name, root


@pytest.mark.pip
def test_round_trip_install_discover_ingest_and_test(installed_plugin, tmp_path):
    from starkit.data.shards import DatasetStore

    name, root = installed_plugin
    names = plugin_names(name)

    res = _run(sys.executable, "-m", "starkit", "plugins", "--json")
    assert res.returncode == 0, res.stderr
    row = {r["name"]: r for r in json.loads(res.stdout)}[name]
    assert (row["distribution"], row["version"], row["hooks"], row["status"]) == (
        names.distribution, "0.1.0", ["starkit_datasets"], "ok",
    )
    res = _run(sys.executable, "-m", "starkit", "datasets", "--json")
    assert res.returncode == 0, res.stderr
    assert {r["name"]: r["plugin"] for r in json.loads(res.stdout)}[name] == name

    # The fixture as README users make it, and what it should yield, from the installed module.
    source = tmp_path / "source"
    res = _run(sys.executable, root / "tests" / "make_fixture.py", source)
    assert res.returncode == 0 and "wrote" in res.stdout, res.stderr
    code = ("import json, sys; from pathlib import Path; from make_fixture import make_fixture; "
            "samples, skipped = make_fixture(Path(sys.argv[1])); print(json.dumps([samples, sorted(skipped)]))")
    res = _run(sys.executable, "-c", code, tmp_path / "expected", cwd=root / "tests")
    assert res.returncode == 0, res.stderr
    expected, expected_skipped = json.loads(res.stdout)

    shards = tmp_path / "shards"
    res = _run(sys.executable, "-m", "starkit", "add-dataset", name, "--source", source, "--out", shards,
               "--image-size", "16", "--workers", "1", "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    store = DatasetStore.open(shards, verify="full")
    assert store.manifest["plugin"] == name and store.manifest["skipped"] == len(expected_skipped)
    stored = {}
    for split in store.splits:
        for i in range(store.count(split)):
            image, labels, sample, _ = store.read(split, i)
            assert image.shape == (16, 16, 3)
            stored[sample] = [split, labels.tolist()]
    assert stored == {n: [split, list(labels)] for n, (split, labels) in expected.items()}

    res = _run(sys.executable, "-m", "pytest", root / "tests", "-q", "-p", "no:cacheprovider", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
