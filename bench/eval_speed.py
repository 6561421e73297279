"""How long ``starkit eval`` takes on the demo run: every test image of both datasets, with the
attribute classifier and the counterfactuals (docs/performance.md, "Evaluation").

    .venv/bin/python bench/eval_speed.py [--root /tmp/starkit-eval-speed] [--repeats 3]
    git archive <commit> starkit | tar -x -C /tmp/before
    .venv/bin/python bench/eval_speed.py --before /tmp/before --repeats 3 [--limit 40] [--busy 2]

Builds what is missing under ``--root`` first, as scripts/demo.sh and the README do:
synth-celeba and synth-rafd (4,000 faces each at 32 px, 400 test images each), a run trained
with the demo preset (``--preset demo``) for ``--iters`` iterations (what an evaluation costs
does not depend on how well G is trained) and a classifier trained for ``--classifier-iters``.
Then runs ``starkit eval --run RUN --classifier FILE --device cpu --json`` ``--repeats``
times, each in a fresh process as a user would, and reports the wall times (process start to exit) and
the report's own ``seconds``. With ``--before``, the same command from that source tree
(``PYTHONPATH``) takes turns with this checkout's, so that load from other jobs hits both
alike; their reports' numbers are compared too (largest difference of any metric). ``--busy N``
runs N single-threaded busy loops alongside, as other jobs on a shared machine would.

Prints one JSON object (also written to ``--out``) with every run, the medians, the CPU and
the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARKIT = [sys.executable, "-m", "starkit"]


def run(args: list[str], cwd: Path) -> None:
    print("$ starkit " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(STARKIT + args, check=True, cwd=cwd)


def build(root: Path, iters: int, classifier_iters: int) -> tuple[Path, Path]:
    """The datasets, the run and the classifier under ``root`` (only what is missing)."""
    data, run_dir, classifier = root / "data", root / "runs" / "demo", root / "runs" / "classifier.pt"
    root.mkdir(parents=True, exist_ok=True)  # the commands run in it
    for name in ("synth-celeba", "synth-rafd"):
        if not (data / name / "manifest.json").is_file():
            run(["add-dataset", name, "--data", str(data), "--count", "4000", "--image-size", "32", "--no-progress"], root)
    if not (run_dir / "checkpoints" / "latest.pt").is_file():
        run(["train", "--datasets", "synth-celeba,synth-rafd", "--data", str(data), "--out", str(run_dir),
             "--preset", "demo", "--iters", str(iters), "--sample-every", "0"], root)
    if not classifier.is_file():
        run(["train-classifier", "--datasets", "synth-celeba,synth-rafd", "--data", str(data), "--out", str(classifier),
             "--iters", str(classifier_iters), "--device", "cpu"], root)
    return run_dir, classifier


def time_eval(run_dir: Path, classifier: Path, out: Path, limit: int | None, source: Path | None) -> dict:
    """One ``starkit eval`` in a fresh process: wall seconds, and the report."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    args = ["eval", "--run", str(run_dir), "--classifier", str(classifier), "--device", "cpu", "--json", "--out", str(out)]
    if limit is not None:
        args += ["--limit", str(limit)]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    # Not run from the repository: ``python -m`` puts the working directory first on sys.path,
    # ahead of PYTHONPATH, and the checkout's starkit would shadow the tree asked for.
    done = subprocess.run(STARKIT + args, env=env, cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"starkit {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cpu = _children_cpu() - cpu_before
    report = json.loads(out.read_text())
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "report_s": report["seconds"], "code": report["git_commit"], "images": report["summary"]["images"],
            "translations": report["summary"]["translations"], "report": report}


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (their workers included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def largest_difference(a: object, b: object, path: str = "") -> tuple[float, str]:
    """The largest absolute difference between two reports' numbers, and where it is
    (timings, paths and versions left out)."""
    skip = {"seconds", "git_commit", "starkit_version"}
    if isinstance(a, dict) and isinstance(b, dict):
        found = [largest_difference(a[k], b.get(k), f"{path}/{k}") for k in a if k not in skip]
        return max(found, default=(0.0, ""))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max((largest_difference(u, v, f"{path}[{i}]") for i, (u, v) in enumerate(zip(a, b))), default=(0.0, ""))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        diff = abs(float(a) - float(b))
        return (diff, path) if diff else (0.0, "")
    return (float("inf"), path) if a != b else (0.0, "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/starkit-eval-speed"), help="where the data and runs live")
    p.add_argument("--iters", type=int, default=300, help="training iterations of the run built when missing")
    p.add_argument("--classifier-iters", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="test images per dataset (default: all)")
    p.add_argument("--before", type=Path, default=None, help="a starkit source tree to time in alternation")
    p.add_argument("--after", type=Path, default=None, help="the source tree to time (default: this checkout)")
    p.add_argument("--busy", type=int, default=0,
                   help="single-threaded busy loops run alongside, standing in for other jobs on a shared machine")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    run_dir, classifier = build(args.root, args.iters, args.classifier_iters)
    sides = {"after": args.after} if args.before is None else {"before": args.before, "after": args.after}
    load_before = os.getloadavg()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    try:
        for i in range(args.repeats):
            for name, source in sides.items():
                result = time_eval(run_dir, classifier, args.root / f"eval-{name}.json", args.limit, source)
                print(f"{name} #{i + 1}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
                      f"{result['report_s']} s in the report", file=sys.stderr, flush=True)
                runs[name].append(result)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    summary = {
        "command": "starkit eval --run RUN --classifier FILE --device cpu --json" + (f" --limit {args.limit}" if args.limit else ""),
        "busy_loops_alongside": args.busy,
        "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "images": runs["after"][0]["images"], "translations": runs["after"][0]["translations"],
    }
    for name, results in runs.items():
        summary[name] = {"source": str(sides[name] or REPO), "git_commit": results[0]["code"],
                         "wall_s": [r["wall_s"] for r in results], "cpu_s": [r["cpu_s"] for r in results],
                         "report_s": [r["report_s"] for r in results],
                         "median_wall_s": statistics.median(r["wall_s"] for r in results)}
    if "before" in runs:
        summary["speed_up"] = round(summary["before"]["median_wall_s"] / summary["after"]["median_wall_s"], 2)
        diff, where = largest_difference(runs["before"][-1]["report"], runs["after"][-1]["report"])
        summary["largest_metric_difference"] = {"value": diff, "at": where}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
