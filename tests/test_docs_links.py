"""The user documentation stays navigable and about the product.

Every relative link in the README and docs/*.md points at a file that exists (and, for a
Markdown file, at a heading that exists); the docs carry no history ("session 12 found…");
and docs/training.md's configuration tables name every training key with its real default.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED_DOCS = [*USER_DOCS, REPO / "CONTRIBUTING.md", REPO / "datasets_registry" / "README.md"]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HISTORY = re.compile(r"\bsessions?\s+\d+", re.IGNORECASE)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, where links are rendered."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped,
    spaces to hyphens, a repeated anchor numbered -1, -2, …"""
    anchors: set[str] = set()
    for _, line in prose_lines(markdown):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(doc: Path) -> list[str]:
    """'FILE:LINE: TARGET (why)' for each relative link of ``doc`` that does not resolve."""
    problems = []
    for number, line in prose_lines(doc.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, …
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (doc.parent / path_part).resolve() if path_part else doc
            where = f"{doc.relative_to(REPO)}:{number}: {target}"
            if not resolved.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(
                    resolved.read_text(encoding="utf-8")):
                problems.append(f"{where} (no heading #{anchor} in {resolved.name})")
    return problems


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc):
    assert broken_links(doc) == []


def test_the_checker_reports_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    (tmp_path / "other.md").write_text("# Real heading\n\n## `starkit eval --json`\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#real-heading) [ok](other.md#starkit-eval---json) [web](https://x.org/a)\n"
        "```\n[inside a code block](nowhere.md)\n```\n"
        "[gone](missing.png) and ![figure](other.md#no-such-heading)\n"
    )
    assert broken_links(doc) == [
        "doc.md:5: missing.png (no such file)",
        "doc.md:5: other.md#no-such-heading (no heading #no-such-heading in other.md)",
    ]


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_user_docs_describe_the_product_not_its_history(doc):
    hits = [f"{doc.relative_to(REPO)}:{n}: {m.group(0)!r}"
            for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
            for m in HISTORY.finditer(line)]
    assert hits == []


# ------------------------------------------------------------------ the configuration tables
def documented_defaults() -> dict[str, str]:
    """Key -> its cell in the default column, from docs/training.md's configuration tables
    (a row may name several keys, e.g. `g_lr`, `d_lr` | 1e-4, 1e-4)."""
    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Configuration"):]
    section = section[:section.index("\n## ", 1)]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        keys = re.findall(r"`([a-z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(",")] if len(keys) > 1 else [cells[1]]
        assert len(defaults) == len(keys), f"docs/training.md: {line!r}: one default per key"
        out.update(zip(keys, defaults))
    return out


def same_default(documented: str, actual) -> bool:
    cell = documented.strip("`").strip()
    if actual is None:
        return cell == "—"
    if isinstance(actual, bool):
        return cell.lower() == str(actual).lower()
    if isinstance(actual, (int, float)):
        try:
            return float(cell) == float(actual)
        except ValueError:
            return False
    if isinstance(actual, list):
        return cell == "[]" and actual == []
    return cell.strip('"') == actual


# Keys whose default is decided at run time; the table says by what.
DECIDED_LATER = {"datasets", "data_root", "image_size"}


def test_every_config_key_is_documented_with_its_default():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.training.config import TRAINING_FIELDS

    actual = {f.name: f.default for f in TRAINING_FIELDS} | dict(STARGAN_DEFAULTS)
    documented = documented_defaults()
    assert sorted(set(actual) - set(documented)) == [], "keys missing from docs/training.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/training.md documents keys that do not exist"
    wrong = {k: (documented[k], v) for k, v in actual.items()
             if k not in DECIDED_LATER and not same_default(documented[k], v)}
    assert wrong == {}


def test_the_stargan_option_tables_are_the_generated_text():
    """docs/training.md's StarGAN option tables are exactly what the family's option
    declarations render (regenerate: starkit.families.stargan.options.stargan_options_markdown)."""
    from starkit.families.stargan.options import OPTION_FIELDS, stargan_options_markdown

    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    begin, end = "<!-- options:stargan begin -->\n", "<!-- options:stargan end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    documented = text[text.index(begin) + len(begin):text.index(end)]
    assert documented == stargan_options_markdown()
    for group, fields in OPTION_FIELDS.items():  # every group and key is in it
        assert f"**{group}**" in documented and all(f"| `{f.name}` |" in documented for f in fields)


def test_the_stargan_v2_option_tables_are_the_generated_text():
    """docs/stargan-v2.md's option tables are exactly what the family's declarations render
    (regenerate: starkit.families.stargan_v2.options.stargan_v2_options_markdown)."""
    from starkit.families.stargan_v2.options import OPTION_FIELDS, stargan_v2_options_markdown

    text = (REPO / "docs" / "stargan-v2.md").read_text(encoding="utf-8")
    begin, end = "<!-- options:stargan-v2 begin -->\n", "<!-- options:stargan-v2 end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    documented = text[text.index(begin) + len(begin):text.index(end)]
    assert documented == stargan_v2_options_markdown()
    for group, fields in OPTION_FIELDS.items():
        assert f"**{group}**" in documented and all(f"| `{f.name}` |" in documented for f in fields)
