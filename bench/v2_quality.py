"""StarGAN v2 against StarGAN (JNT) at the quality benchmark's CPU budget.

    .venv/bin/python bench/v2_quality.py                  # the real profile (~20 min, 2 cores)
    .venv/bin/python bench/v2_quality.py --profile smoke  # a 1-2 minute check that everything runs
    .venv/bin/python bench/v2_quality.py --v2-set lr=1e-4 --results /tmp/v2q  # an experiment

bench/quality.py measures whether StarGAN trained jointly on synth-celeba and synth-rafd (JNT)
carries synth-rafd's expressions onto synth-celeba faces. This script asks the same of StarGAN v2
(family ``stargan-v2``, preset ``quality-benchmark``) with the same data, image size, iterations
and judge:

1. ingest ``synth-celeba`` and ``synth-rafd`` as bench/quality.py does;
2. train JNT (bench/quality.py's recipe), v2 (default domains: synth-celeba's hair colours and
   synth-rafd's expressions, 11 joined domains) and the judge classifier side by side, one
   single-thread process each, each job's wall and CPU seconds recorded;
3. evaluate both on synth-celeba and synth-rafd test faces with the same judge and image limit;
   v2 latent- and reference-guided with K styles, its style diversity measured with an AlexNet
   of random weights drawn from seed 0 (no pretrained weights are fetched: the distance compares
   models measured with the same file, it is no calibrated LPIPS). JNT makes one output per
   target, so its style diversity is 0 by construction and is not measured;
4. write ``v2_quality.json`` (seed, commit, config, machine, every number, side by side) and
   ``v2_quality.png``: rows synth-celeba test faces; columns input, JNT's expressions, v2
   latent-guided (two styles each), v2 reference-guided (its references, synth-rafd test faces,
   in the first row) and the exact counterfactuals.

The v2 recipe is starkit's ``quality-benchmark`` preset (fp32, device cpu, no loader processes);
``--v2-set KEY=VALUE`` changes one of its keys for an experiment (results then stay in --work).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/quality.py, a sibling script
import quality as q  # noqa: E402

from starkit.families.stargan_v2.presets import PRESETS as V2_PRESETS  # noqa: E402

CELEBA, RAFD = q.CELEBA, q.RAFD
V2_PRESET = "quality-benchmark"
V2_VALUES = V2_PRESETS[V2_PRESET]
#: The judge's seed for the random AlexNet behind style_diversity (see the module docstring).
ALEXNET_SEED = 0
GUIDANCES = ("latent", "reference")


@dataclass(frozen=True)
class Bench:
    """JNT's profile (data, budget, judge and evaluation come from it: bench/quality.py), the
    v2 run's training keys over its preset, and the styles evaluated per image and domain."""

    jnt: Any
    v2: dict[str, Any] = field(default_factory=dict)
    styles: int = 4
    figure_styles: int = 2


PROFILES = {
    "cpu": Bench(q.PROFILES["cpu20"]),
    # Every stage runs; the numbers mean nothing. A larger test share, so that every one of
    # the 11 domains has a test face to take a reference from.
    "smoke": Bench(replace(q.PROFILES["smoke"], test_fraction=0.3),
                   v2={"conv_dim": 8, "max_conv_dim": 16, "mapping_dim": 8, "style_dim": 8, "latent_dim": 4,
                       "batch_size": 4}, styles=2),
}


# ------------------------------------------------------------------------------ training
def v2_config(bench: Bench, data: Path) -> dict[str, Any]:
    """The v2 run's training config: its preset, the benchmark's data, iterations and seed (the
    diversity weight decayed over all iterations, as the preset does), and ``bench.v2``."""
    p = bench.jnt
    return {"model": "stargan-v2", "preset": V2_PRESET, "datasets": [CELEBA, RAFD], "data_root": str(data),
            "iters": p.iters, "ds_iter": p.iters, "latest_every": p.iters, "seed": p.train_seed, **bench.v2}


def _v2_train_child(bench: Bench, data: Path, runs: Path) -> None:
    import shutil

    from starkit.training import train

    q._single_thread()
    shutil.rmtree(runs / "v2", ignore_errors=True)
    train(runs / "v2", v2_config(bench, data), progress=False, handle_sigint=False)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_child(out: Path, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Run ``target(*args)`` and write its wall and CPU seconds (this process's) to ``out``."""
    wall, cpu = time.perf_counter(), _own_cpu_seconds()
    target(*args)
    q._write_json(out, {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(_own_cpu_seconds() - cpu, 1)})


def run_side_by_side(jobs: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], work: Path) -> dict[str, Any]:
    """Run ``jobs`` (name -> (function, args)) in spawned processes at once; returns each one's
    wall and CPU seconds. A failed job fails the benchmark, naming it."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    outs = {name: work / f"time-{name}.json" for name in jobs}
    procs = {}
    for name, (target, args) in jobs.items():
        outs[name].unlink(missing_ok=True)
        procs[name] = ctx.Process(target=_timed_child, args=(outs[name], target, args), name=name)
        procs[name].start()
    for name, proc in procs.items():
        proc.join()
        print(f"   {name} done (exit {proc.exitcode})", file=sys.stderr, flush=True)
    failed = [name for name, proc in procs.items() if proc.exitcode != 0]
    if failed:
        raise RuntimeError(f"{', '.join(failed)} failed (see the messages above)")
    return {name: json.loads(out.read_text(encoding="utf-8")) for name, out in outs.items()}


def train_all(bench: Bench, data: Path, work: Path) -> dict[str, Any]:
    p, runs = bench.jnt, work / "runs"
    return run_side_by_side({
        "jnt": (q._train_child, ("jnt", [CELEBA, RAFD], p, data, runs)),
        "v2": (_v2_train_child, (bench, data, runs)),
        "classifier": (q._classifier_child, (p, data, work / "classifier.pt")),
    }, work)


# ------------------------------------------------------------------------------ evaluation
def random_alexnet(work: Path) -> Path:
    """An AlexNet state dict of random weights from ALEXNET_SEED (style_diversity's features)."""
    import torch
    from torchvision.models import alexnet

    path = work / f"alexnet-random-seed{ALEXNET_SEED}.pt"
    torch.manual_seed(ALEXNET_SEED)
    torch.save(alexnet(weights=None).state_dict(), path)
    return path


def _v2_eval_child(out: Path, run_dir: Path, data: Path, classifier: Path, bench: Bench, alexnet: Path) -> None:
    from starkit.evaluation.evaluate import EvalOptions, evaluate_run

    q._single_thread()
    options = EvalOptions(limit=bench.jnt.eval_limit, batch_size=16, styles=bench.styles, seed=0)
    report = evaluate_run(run_dir, data, classifier=classifier, sources=[CELEBA, RAFD], options=options,
                          device=bench.jnt.device, alexnet_weights=alexnet, progress=False)
    q._write_json(out, report)


def evaluate_all(bench: Bench, data: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    runs, clf, alexnet = work / "runs", work / "classifier.pt", random_alexnet(work)
    outs = {"jnt": work / "eval-jnt.json", "v2": work / "eval-v2.json"}
    run_side_by_side({
        "eval-jnt": (q._eval_child, (outs["jnt"], runs / "jnt", data, clf, bench.jnt, "target", (CELEBA, RAFD))),
        "eval-v2": (_v2_eval_child, (outs["v2"], runs / "v2", data, clf, bench, alexnet)),
    }, work)
    return tuple(json.loads(outs[name].read_text(encoding="utf-8")) for name in ("jnt", "v2"))


# ------------------------------------------------------------------------------ numbers
def comparable(datasets: dict[str, Any]) -> dict[str, Any]:
    """The numbers JNT and v2 share, from a report's ``datasets`` block (JNT's, or one v2
    guidance's): expressions on synth-celeba and on synth-rafd faces, hair, counterfactual L1
    ratios (translation's L1 to the exact counterfactual over the input's)."""
    expr = datasets[CELEBA]["targets"][RAFD]["groups"]["expression"]
    own = datasets[RAFD]["targets"][RAFD]["groups"]["expression"]
    hair = datasets[CELEBA]["targets"][CELEBA]["groups"]["hair"]
    return {
        "expression_accuracy": expr["accuracy"],
        "expression_accuracy_per_target": {a: v["accuracy"] for a, v in expr["attributes"].items()},
        "expression_l1_ratio": q._ratio(expr["counterfactual_l1"], expr["identity_l1"]),
        "expression_resample_l1_ratio": q._ratio(expr["resample_l1"], expr["identity_l1"]),
        "expression_accuracy_on_rafd_faces": own["accuracy"],
        "expression_l1_ratio_on_rafd_faces": q._ratio(own["counterfactual_l1"], own["identity_l1"]),
        "hair_accuracy": hair["accuracy"],
        "hair_l1_ratio": q._ratio(hair["counterfactual_l1"], hair["identity_l1"]),
        "hair_resample_l1_ratio": q._ratio(hair["resample_l1"], hair["identity_l1"]),
        "reconstruction_l1_celeba": datasets[CELEBA]["reconstruction_l1"],
        "reconstruction_l1_rafd": datasets[RAFD]["reconstruction_l1"],
    }


def v2_numbers(report: dict[str, Any]) -> dict[str, Any]:
    """Per guidance: :func:`comparable` and the style diversity (synth-celeba faces to
    synth-rafd's expressions, and over all of each source's translations)."""
    out: dict[str, Any] = {"styles": report["styles"], "seed": report["seed"], "parameters": report["parameters"],
                           "iteration": report["iteration"], "notes": report["notes"]}
    for guidance in GUIDANCES:
        block = report["guidance"].get(guidance)
        if block is None:
            out[guidance] = None
            continue
        ds = block["datasets"]
        out[guidance] = {
            **comparable(ds),
            "style_diversity_expression": ds[CELEBA]["targets"][RAFD]["groups"]["expression"]["style_diversity"],
            "style_diversity_celeba_faces": ds[CELEBA]["style_diversity"],
            "style_diversity_rafd_faces": ds[RAFD]["style_diversity"],
        }
    return out


#: The rows of the side-by-side table: (key, what it is).
SIDE_BY_SIDE = (
    ("expression_accuracy", "synth-rafd expressions on synth-celeba faces (judge accuracy)"),
    ("expression_accuracy_on_rafd_faces", "synth-rafd expressions on synth-rafd faces (judge accuracy)"),
    ("hair_accuracy", "synth-celeba hair colours (judge accuracy)"),
    ("expression_l1_ratio", "expressions on synth-celeba faces: L1 to the exact counterfactual / identity's"),
    ("hair_l1_ratio", "hair: L1 to the exact counterfactual / identity's"),
    ("style_diversity_expression", "style diversity, synth-celeba faces to expressions (random-AlexNet distance)"),
)


def side_by_side(jnt: dict[str, Any], v2: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for key, meaning in SIDE_BY_SIDE:
        rows[key] = {"meaning": meaning, "jnt": jnt.get(key),
                     **{f"v2_{g}": (v2[g] or {}).get(key) for g in GUIDANCES}}
    rows["style_diversity_expression"]["jnt"] = 0.0
    rows["style_diversity_expression"]["jnt_note"] = "0 by construction: one output per target (not measured)"
    return rows


def training_costs(bench: Bench, times: dict[str, Any], work: Path) -> dict[str, Any]:
    """Each training job's wall and CPU seconds and the images it saw."""
    v2 = q.run_config(work / "runs" / "v2")
    jnt_images = bench.jnt.iters * bench.jnt.batch_size
    v2_images = int(v2["iters"]) * int(v2["batch_size"])
    return {
        "jnt": {**times["jnt"], "iterations": bench.jnt.iters, "batch_size": bench.jnt.batch_size,
                "images_seen": jnt_images},
        "v2": {**times["v2"], "iterations": int(v2["iters"]), "batch_size": int(v2["batch_size"]),
               "images_seen": v2_images,
               # Besides each input, R images of its target domain whose style the reference-guided steps copy.
               "reference_images_seen": v2_images * int(v2["references_per_sample"])},
        "classifier": {**times["classifier"], "iterations": bench.jnt.classifier_iters,
                       "images_seen": bench.jnt.classifier_iters * bench.jnt.classifier_batch_size},
    }


# ------------------------------------------------------------------------------ figure
def _reference_face(store: Any, attributes: list[str], expression: str) -> np.ndarray:
    """The first test face of ``expression`` (a training face where the test split has none:
    the smoke profile's few test faces)."""
    column = attributes.index(expression)
    for split in ("test", "train"):
        picks = np.flatnonzero(store.labels(split)[:, column] > 0.5)
        if len(picks):
            return store.read(split, int(picks[0]))[0]
    raise RuntimeError(f"{RAFD} has no face of {expression!r} to take a style from")


def figure(bench: Bench, data: Path, work: Path, out: Path) -> None:
    """Rows: synth-celeba test faces, under a row holding v2's references. Columns: input |
    JNT | v2 latent-guided (styles 0..figure_styles-1 of seed 0) | v2 reference-guided |
    exact counterfactuals, each for the four figure expressions."""
    from compare_runs import draw

    from starkit.data.shards import DatasetStore
    from starkit.evaluation.evaluate import counterfactual_renderer
    from starkit.inference import Translator
    from starkit.training.samples import to_uint8_images

    size = bench.jnt.image_size
    jnt = Translator.from_run(work / "runs" / "jnt", "cpu")
    v2 = Translator.from_run(work / "runs" / "v2", "cpu")
    expressions = list(jnt.label_space.dataset(RAFD).attributes)
    names = list(q.FIGURE_EXPRESSIONS)
    celeba, rafd = DatasetStore.open(data / CELEBA), DatasetStore.open(data / RAFD)
    try:
        references = [_reference_face(rafd, expressions, e) for e in names]
        blank = np.full((size, size, 3), 255, np.uint8)
        n_latent = len(names) * bench.figure_styles
        rows = [[blank] * (1 + len(names) + n_latent) + references + [blank] * len(names)]
        for i in range(min(bench.jnt.figure_rows, celeba.count("test"))):
            image, _, _, meta = celeba.read("test", i)
            rows.append(_figure_row(image, meta, jnt, v2, references, expressions, bench, size,
                                    counterfactual_renderer, to_uint8_images))
    finally:
        celeba.close()
        rafd.close()
    styles = [f"{e} s{k}" for e in names for k in range(bench.figure_styles)]
    draw([("input", [""]), ("JNT (StarGAN, joint)", names), ("v2 latent-guided", styles),
          ("v2 reference-guided", names), ("exact counterfactual", names)],
         rows, out)


def _figure_row(image, meta, jnt, v2, references, expressions, bench, size, renderer, to_uint8) -> list[np.ndarray]:
    render, _ = renderer(meta)
    x = jnt.to_input(image[None])
    cells = [image]
    for e in q.FIGURE_EXPRESSIONS:
        row = np.zeros(len(expressions), np.float32)
        row[expressions.index(e)] = 1
        cells.append(to_uint8(jnt.translate(x, jnt.label_space.encode(RAFD, row)[None]))[0])
    targets = {e: v2.domains.target_vector(v2.domains.index(f"{RAFD}:{e}"))[None] for e in q.FIGURE_EXPRESSIONS}
    for e in q.FIGURE_EXPRESSIONS:
        for k in range(bench.figure_styles):
            cells.append(to_uint8(v2.translate_latent(x, targets[e], style=k, seed=0))[0])
    for e, reference in zip(q.FIGURE_EXPRESSIONS, references):
        cells.append(to_uint8(v2.translate_reference(x, targets[e], v2.to_input(reference[None])))[0])
    for e in q.FIGURE_EXPRESSIONS:
        cells.append(render(RAFD, {a: int(a == e) for a in expressions}, size))
    return cells


# ------------------------------------------------------------------------------ main
def parse_v2_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs for the v2 run's training config, each value read as JSON where it
    parses (numbers, true/false, lists) and as a string otherwise; the run's own checks refuse
    unknown keys and bad values by name."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--v2-set {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text.strip()
    return out


def choose_bench(args: argparse.Namespace) -> tuple[Bench, bool]:
    """The profile with the command line's changes, and whether any was made."""
    base = PROFILES[args.profile]
    jnt = q.apply_overrides(base.jnt, args.overrides)
    if args.seed is not None:
        jnt = replace(jnt, seed=args.seed, train_seed=args.seed)
    bench = replace(base, jnt=jnt, v2={**base.v2, **parse_v2_overrides(args.v2_overrides)})
    if args.styles is not None:
        bench = replace(bench, styles=args.styles)
    return bench, bench != base


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: starkit-bench-v2-quality-PROFILE in the temp folder)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where v2_quality.json/png go (default: bench/results for the unchanged cpu "
                             "profile, else --work)")
    parser.add_argument("--seed", type=int, default=None, help="data, judge and both trainings' seed")
    parser.add_argument("--styles", type=int, default=None, help="styles per image and domain evaluated")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of bench/quality.py's profile (data, budget, judge, JNT's recipe)")
    parser.add_argument("--v2-set", dest="v2_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the v2 run's training config (its preset's, e.g. lr=1e-4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    q._single_thread()
    bench, changed = choose_bench(args)
    work = args.work or Path(tempfile.gettempdir()) / f"starkit-bench-v2-quality-{args.profile}"
    data = work / "data"
    results_dir = args.results or (q.RESULTS if args.profile == "cpu" and not changed else work)
    work.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.profile == "cpu" else f"-{args.profile}"
    commit = q.git_commit()  # before anything tracked is written (see bench/quality.py)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def stage(name: str, fn: Callable[..., Any], *a: Any) -> Any:
        print(f"== {name}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        value = fn(*a)
        timings[name] = round(time.perf_counter() - t, 1)
        return value

    ingested = stage("ingest", q.ingest_datasets, bench.jnt, data)
    train_times = stage("train_jnt_v2_classifier", train_all, bench, data, work)
    jnt_report, v2_report = stage("evaluate", evaluate_all, bench, data, work)
    figure_name = f"v2_quality{suffix}.png"
    stage("figure", figure, bench, data, work, results_dir / figure_name)
    timings["total"] = round(time.perf_counter() - started, 1)

    jnt = {**q.headline(jnt_report, joint=True), **comparable(jnt_report["datasets"])}
    v2 = v2_numbers(v2_report)
    results = {
        "format": "starkit.bench.v2_quality",
        "version": 1,
        "profile": args.profile,
        "seed": bench.jnt.seed,
        "git_commit": commit,
        "config": {"benchmark": asdict(bench.jnt), "v2_preset": V2_PRESET, "v2_overrides": bench.v2,
                   "styles": bench.styles, "style_diversity_features": f"AlexNet, random weights of seed {ALEXNET_SEED}"},
        "training": {"jnt": q.run_config(work / "runs" / "jnt"), "v2": q.run_config(work / "runs" / "v2")},
        "machine": {"cpus": os.cpu_count(), "threads_per_job": 1, "python": platform.python_version(),
                    "torch": torch.__version__, "platform": platform.platform(), "cpu": q.cpu_description()},
        "datasets": ingested,
        "chance": {"expression": 1 / 8, "hair": 1 / 3},
        "side_by_side": side_by_side(jnt, v2),
        "jnt": jnt,
        "v2": v2,
        "classifier": q.judge_quality(jnt_report),
        "training_cost": training_costs(bench, train_times, work),
        "timings_s": timings,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "figure": figure_name,
    }
    q._write_json(results_dir / f"v2_quality{suffix}.json", results)
    print(json.dumps({"side_by_side": results["side_by_side"], "training_cost": results["training_cost"],
                      "timings_s": timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
