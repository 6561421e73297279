"""Variants of the quality benchmark's JNT, side by side: which recipe change moves which number?

    .venv/bin/python bench/quality_sweep.py bench/sweeps/classifier_on_fakes.json --out /tmp/sweep.json
    python3 bench/quality_sweep.py SPEC.json --device cuda --jobs 13 --out OUT.json   # on a GPU machine

SPEC is a JSON object ``{"variant name": {KEY: VALUE, ...}, ...}``: each KEY is a field of
``bench/quality.py``'s ``Profile`` (``train_seed``, ``lambda_cls_fake``, ...), or, under a
nested ``"config"`` object, any other training key (``{"config": {"beta1": 0.0}}``). Every
variant trains the JNT generator (synth-celeba + synth-rafd) with the profile's recipe and
those changes, and is evaluated like the benchmark's JNT: expression accuracy on synth-celeba
and on synth-rafd test faces, hair, Male and Young accuracy, the hair and expression
counterfactual-L1 ratios and the mask ablation. The data and the judge are made once, with the
profile's seed, exactly as ``bench/quality.py`` makes them.

Each variant runs in its own single-thread process, ``--jobs`` at a time: on a 2-core machine
two variants take about as long as one benchmark run; a GPU machine with 16 cores runs a dozen
in the time of one. The precision is the profile's (cpu20: fp32, as the benchmark trains), so
that the variants compute what the benchmark computes and GPU runs what CPU runs (up to
rounding; CUDA's convolutions use TF32); ``--precision`` overrides it. The output file records the profile,
the variants, the commit and each variant's headline numbers; a table is printed at the end.

One training seed says little: on the benchmark's recipe the JNT expression accuracy moved by
up to 0.075 between training seeds 0, 1 and 2. ``--seeds 0,1,2`` runs every
variant at each of those training seeds (as ``NAME@s0``, ``NAME@s1``, ...) and adds, per
variant, the mean, minimum and maximum of each number over its finished seeds (``summary``
in the output file, and rows of the table):

    .venv/bin/python bench/quality_sweep.py bench/sweeps/hair_push_seeds.json --seeds 0,1,2 --jobs 2 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # noqa: E402

COLUMNS = {
    "expression_accuracy": "expr",
    "expression_accuracy_on_rafd_faces": "expr rafd",
    "hair_accuracy": "hair",
    "male_accuracy": "Male",
    "young_accuracy": "Young",
    "hair_l1_ratio": "hair L1",
    "expression_l1_ratio": "expr L1",
    "mask_ablation_expression_accuracy": "ablation",
    "train_s": "train s",
}


def variant_profile(base: q.Profile, changes: dict[str, Any]) -> tuple[q.Profile, dict[str, Any]]:
    """The variant's Profile and its extra training keys; unknown Profile fields are refused."""
    names = {f.name for f in fields(base)}
    changes = dict(changes)
    extra = changes.pop("config", {})
    unknown = sorted(set(changes) - names)
    if unknown:
        raise SystemExit(f"unknown Profile field(s) {', '.join(unknown)}; put other training keys under \"config\"")
    return replace(base, **changes), extra


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else is refused by name."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise SystemExit(f"--seeds: expected distinct non-negative integers, got {text!r}")
    return seeds


def seeded_name(name: str, seed: int) -> str:
    """The name of ``name``'s run at training seed ``seed``: ``NAME@sSEED``."""
    return f"{name}@s{seed}"


def expand_seeds(spec: dict[str, dict[str, Any]], seeds: list[int] | None) -> dict[str, dict[str, Any]]:
    """Each variant once per training seed, named ``NAME@sSEED``; without seeds, ``spec`` itself.

    A variant that sets ``train_seed`` itself cannot also take ``--seeds``: that is refused."""
    if not seeds:
        return spec
    fixed = sorted(name for name, changes in spec.items() if "train_seed" in changes)
    if fixed:
        raise SystemExit(f"variant(s) {', '.join(fixed)} set train_seed; drop it or run without --seeds")
    return {seeded_name(name, seed): {**changes, "train_seed": seed} for name, changes in spec.items() for seed in seeds}


def summarise(rows: dict[str, Any], spec: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """Per variant of ``spec``: ``seeds`` (the finished ones) and, for each number of the table,
    ``{"mean", "min", "max"}`` over them (None where no seed finished)."""
    summary: dict[str, Any] = {}
    for name in spec:
        runs = {seed: rows.get(seeded_name(name, seed)) for seed in seeds}
        done = [(seed, row) for seed, row in runs.items() if row is not None and not row.get("unfinished")]
        entry: dict[str, Any] = {"seeds": [seed for seed, _ in done]}
        for key in COLUMNS:
            values = [row[key] for _, row in done if isinstance(row.get(key), (int, float))]
            entry[key] = ({"mean": round(sum(values) / len(values), 6), "min": min(values), "max": max(values)}
                          if values else None)
        summary[name] = entry
    return summary


def run_variant(name: str, profile: q.Profile, extra: dict[str, Any], work: Path) -> dict[str, Any]:
    """Train and evaluate one JNT variant (in this process, single-threaded)."""
    q._single_thread()
    data, classifier = work / "data", work / "classifier.pt"
    started = time.perf_counter()
    run_dir = q.train_generator(name, [q.CELEBA, q.RAFD], profile, data, work / "runs", progress=False, extra=extra)
    train_s = time.perf_counter() - started
    report = q.evaluate(run_dir, data, classifier, profile, "target", (q.CELEBA, q.RAFD), progress=False)
    ablation = q.evaluate(run_dir, data, classifier, profile, "source", (q.CELEBA,), progress=False)
    out = q.headline(report, joint=True)
    out["mask_ablation_expression_accuracy"] = q._group(ablation, q.CELEBA, q.RAFD, "expression")["accuracy"]
    out["train_s"] = round(train_s)
    return out


def _child(argv: list[str]) -> int:
    name, spec, work = argv[0], json.loads(argv[1]), Path(argv[2])
    profile = q.Profile(**spec["profile"])
    result = run_variant(name, profile, spec["extra"], work)
    q._write_json(work / "results" / f"{name}.json", result)
    return 0


def prepare(profile: q.Profile, work: Path) -> None:
    """The benchmark's data and judge, made once per work folder (a marker says with what)."""
    marker = work / "prepared.json"
    key = {k: v for k, v in asdict(profile).items()
           if k in ("image_size", "count", "test_fraction", "seed", "classifier_iters", "classifier_batch_size",
                    "classifier_image_size", "classifier_lr", "classifier_augment", "eval_limit", "device")}
    if marker.exists() and json.loads(marker.read_text()) == key:
        return
    marker.unlink(missing_ok=True)
    print("== ingest and judge", file=sys.stderr, flush=True)
    q.ingest_datasets(profile, work / "data")
    # One thread, as bench/quality.py's judge job: with more, the reduction order and so the
    # judge's weights differ, and with them its verdicts (by 0.03 in expression accuracy on one
    # generator): the sweep's numbers would not be the benchmark's.
    q._single_thread()
    q.train_judge(profile, work / "data", work / "classifier.pt", progress=False)
    q._write_json(marker, key)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="JSON object: variant name -> Profile changes")
    parser.add_argument("--profile", choices=sorted(q.PROFILES), default="cpu20")
    parser.add_argument("--device", default=None, help="override the profile's device (cpu, cuda)")
    parser.add_argument("--precision", default=None,
                        help="override the profile's training precision (fp32, bf16, auto; cpu20: fp32)")
    parser.add_argument("--seeds", type=parse_seeds, default=None,
                        help="run every variant at each of these training seeds, e.g. 0,1,2, and summarise")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="variants trained at a time")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds after which unfinished variants are stopped (and reported as such)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "starkit-quality-sweep")
    parser.add_argument("--out", type=Path, required=True, help="results file (JSON)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    commit = q.git_commit()  # the code that runs, read before anything is written
    base = q.PROFILES[args.profile]
    if args.device:
        base = replace(base, device=args.device)
    if args.precision:
        base = replace(base, precision=args.precision)
    try:
        spec = json.loads(args.spec.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{args.spec}: {exc}") from None
    if not isinstance(spec, dict) or not all(isinstance(v, dict) for v in spec.values()):
        raise SystemExit(f"{args.spec}: expected an object of variant name -> object of changes")
    runs = expand_seeds(spec, args.seeds)
    variants = {name: variant_profile(base, changes) for name, changes in runs.items()}
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(base, args.work)
    results_dir = args.work / "results"
    results_dir.mkdir(exist_ok=True)
    for name in variants:
        (results_dir / f"{name}.json").unlink(missing_ok=True)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pending = list(variants)
    running: dict[str, subprocess.Popen] = {}
    logs = args.work / "logs"
    logs.mkdir(exist_ok=True)
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            profile, extra = variants[name]
            child_spec = json.dumps({"profile": asdict(profile), "extra": extra})
            with open(logs / f"{name}.log", "w", encoding="utf-8") as log:
                running[name] = subprocess.Popen(
                    [sys.executable, __file__, "--child", name, child_spec, str(args.work)],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
        time.sleep(2)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
        if args.deadline is not None and time.perf_counter() - started > args.deadline:
            for proc in running.values():
                proc.kill()
            break

    rows: dict[str, Any] = {}
    for name, (profile, extra) in variants.items():
        path = results_dir / f"{name}.json"
        if path.exists():
            rows[name] = {"changes": runs[name], **json.loads(path.read_text(encoding="utf-8"))}
        else:
            log_path = logs / f"{name}.log"
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-800:] if log_path.exists() else ""
            rows[name] = {"changes": runs[name], "unfinished": True, "log_tail": tail}
    summary = summarise(rows, spec, args.seeds) if args.seeds else None
    import torch

    q._write_json(args.out, {
        "format": "starkit.bench.quality_sweep",
        "version": 1,
        "profile": args.profile,
        "base": asdict(base),
        "precision": base.precision,
        "git_commit": commit,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "cpu": q.cpu_description(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "wall_s": round(time.perf_counter() - started, 1),
        "variants": rows,
        **({"seeds": args.seeds, "summary": summary} if args.seeds else {}),
    })
    print_table(rows, summary)
    return 0


def print_table(rows: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("variant", *COLUMNS.values())
    for name, row in rows.items():
        if row.get("unfinished"):
            table.add_row(name, "unfinished")
            continue
        cells = [row.get(key) for key in COLUMNS]
        table.add_row(name, *("" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in cells))
    for name, entry in (summary or {}).items():
        label = f"{name}: mean of {len(entry['seeds'])} (min–max)"
        table.add_row(label, *("" if entry[key] is None else
                               f"{entry[key]['mean']:.3f} ({entry[key]['min']:.3f}–{entry[key]['max']:.3f})"
                               if key != "train_s" else f"{entry[key]['mean']:.0f}"
                               for key in COLUMNS))
    Console(width=200).print(table)


if __name__ == "__main__":
    sys.exit(main())
