"""README.md's "Using it" block is what a new user types first. Every `starkit` command in it
must exist with the options shown, and must either work on what `scripts/demo.sh` leaves
(data/synth-celeba, data/synth-rafd and the run runs/demo) or sit under a comment that says
which data it needs ("# Needs ...").

The check reads the block, parses each command against the real click commands, and for the
demo's commands checks the dataset names, runs, input folders and `--to` targets against the
demo's datasets and label space."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from starkit.cli.main import cli
from starkit.labels import LabelSpace
from starkit.translate import parse_target

ROOT = Path(__file__).resolve().parents[1]
DEMO_DATASETS = ("synth-celeba", "synth-rafd")  # scripts/demo.sh, in its --datasets order
DEMO_RUN = "runs/demo"
DEMO_DATA = "data"


@dataclass
class Shown:
    """One `starkit` command of the block: its words, line and whether a comment says it
    needs other data than the demo's."""

    words: list[str]
    line: int
    needs_other_data: bool


@dataclass
class Parsed:
    name: str
    options: dict[str, list[str]] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)


def using_it_commands(readme: str) -> list[Shown]:
    """The `starkit` commands of the first ```bash block under "## Using it". A full-line
    comment starts a group of commands (a blank line ends it); a comment containing "needs"
    marks its group as needing other data."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "## Using it")
    begin = next(i for i in range(start, len(lines)) if lines[i].strip() == "```bash") + 1
    end = next(i for i in range(begin, len(lines)) if lines[i].strip() == "```")
    shown, needs = [], False
    for i in range(begin, end):
        text = lines[i].strip()
        if not text:
            needs = False
        elif text.startswith("#"):
            needs = "needs" in text.lower()
        elif text.startswith("starkit "):
            shown.append(Shown(shlex.split(text, comments=True), i + 1, needs))
    return shown


def parse(shown: Shown) -> Parsed:
    """The command's options and arguments as its click command reads them; an unknown
    command or option, a missing value or a wrong number of arguments fails the test."""
    where = f"README.md line {shown.line}: {' '.join(shown.words)}"
    command = cli.commands.get(shown.words[1])
    assert command is not None, f"{where}: no command {shown.words[1]!r}"
    options = {name: p for p in command.params if isinstance(p, click.Option) for name in p.opts + p.secondary_opts}
    parsed = Parsed(shown.words[1])
    words = iter(shown.words[2:])
    for word in words:
        if not word.startswith("-"):
            parsed.arguments.append(word)
            continue
        name, _, value = word.partition("=")
        assert name in options, f"{where}: {name} is not an option of `starkit {parsed.name}`"
        if not options[name].is_flag and not value:
            value = next(words, None)
            assert value is not None, f"{where}: {name} needs a value"
        parsed.options.setdefault(options[name].name, []).append(value)
    wanted = [p for p in command.params if isinstance(p, click.Argument)]
    assert len(parsed.arguments) == len(wanted), f"{where}: expected arguments {[p.name for p in wanted]}"
    missing = [p.opts[0] for p in command.params if isinstance(p, click.Option) and p.required
               and p.name not in parsed.options]
    assert not missing, f"{where}: missing required {missing}"
    return parsed


def demo_label_space() -> LabelSpace:
    from starkit.catalog import get_dataset

    return LabelSpace.from_specs([get_dataset(name) for name in DEMO_DATASETS])


def check_on_demo(shown: Shown, parsed: Parsed, made: set[str]) -> None:
    """Fail unless ``parsed`` works on the demo's data and run; ``made`` holds the folders and
    runs earlier commands of the block wrote (updated here)."""
    where = f"README.md line {shown.line}: {' '.join(shown.words)}"
    opt = parsed.options
    named = [n for v in opt.get("datasets", []) + opt.get("sources", []) for n in v.split(",")]
    if parsed.name in ("export", "add-dataset"):
        named += parsed.arguments
    for name in named:
        assert name in DEMO_DATASETS, f"{where}: {name!r} is not a demo dataset; say which data it needs"
    for data in opt.get("data_root", []):
        assert data == DEMO_DATA, f"{where}: --data {data} is not the demo's data root"
    for run in opt.get("run_dir", []):
        assert run.rstrip("/") in made | {DEMO_RUN}, f"{where}: --run {run} is not the demo's run"
    for folder in opt.get("inputs", []):
        assert folder.rstrip("/") in made, f"{where}: --input {folder} was not written by a command above"
    for config in opt.get("config_file", []):
        assert (ROOT / config).is_file(), f"{where}: --config {config} is not in the repository"
    targets = opt.get("targets", [])
    if targets:
        space = demo_label_space()
        source = (opt.get("source_dataset") or [DEMO_DATASETS[0]])[0]
        row = space.random_labels(source, 1)[0]
        for target in targets:
            space.target(parse_target(target), source, row)  # LabelError: not a demo target
    made.update(v.rstrip("/") for v in opt.get("out", []))


def test_the_block_has_commands_for_the_demo_and_for_other_data():
    shown = using_it_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(s.needs_other_data for s in shown) and any(not s.needs_other_data for s in shown)
    assert any(s.words[1] == "translate" and not s.needs_other_data for s in shown)


def test_every_command_exists_with_the_options_shown():
    for shown in using_it_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        parse(shown)


def test_every_command_runs_on_the_demo_or_says_which_data_it_needs(registry):
    made: set[str] = set()
    for shown in using_it_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        if not shown.needs_other_data:
            check_on_demo(shown, parse(shown), made)


def test_the_check_catches_a_target_the_demo_run_does_not_have(registry):
    readme = "## Using it\n\n```bash\nstarkit translate --run runs/demo --input x/ --to rafd:happy --out o/\n```\n"
    (shown,) = using_it_commands(readme)
    with pytest.raises(Exception, match="unknown dataset 'rafd'"):
        check_on_demo(shown, parse(shown), {"x"})
    needs = readme.replace("```bash\n", "```bash\n# Needs RaFD\n")
    assert using_it_commands(needs)[0].needs_other_data
