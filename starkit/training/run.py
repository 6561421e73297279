"""Setting up a training run: config, datasets, label space, run directory; then train.

``train()`` is what ``starkit train`` calls, and what tests and notebooks call too::

    from starkit.training import train
    result = train("runs/joint", {"datasets": ["celeba", "rafd"], "data_root": "data", "iters": 1000})

The run directory holds ``config.json`` (the resolved config, data root and starkit version),
``label_space.json``, ``metrics.jsonl``, ``checkpoints/`` and ``samples/``. While a process
trains in it, the folder is locked (``.starkit.lock``, see :func:`hold_run_dir`): a second
``starkit train`` on it is refused with the first one's pid.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .. import __version__
from ..durable import atomic_write_text, remove_stale_temps
from ..errors import StarkitError
from ..labels import LabelSpace
from ..model_family import ModelFamily
from ..names import did_you_mean
from .config import ConfigError, load_config_file, resolve_config, resume_config
from .trainer import LATEST, Callback, TrainResult

CONFIG_NAME = "config.json"
LABEL_SPACE_NAME = "label_space.json"


class RunDirError(StarkitError):
    """The run directory cannot be used as asked (exists already, or holds no run to resume)."""


@dataclass
class RunSetup:
    """Everything decided before training starts (``--dry-run`` prints it)."""

    run_dir: Path
    config: dict[str, Any]
    family: ModelFamily
    stores: list[Any]
    label_space: LabelSpace
    resume_from: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: The run folder's state when it was read (``run_dir_fingerprint``); None: not checked.
    fingerprint: tuple | None = None

    def close(self) -> None:
        for store in self.stores:
            store.close()


# ---------------------------------------------------------------------------- datasets
def open_datasets(names: Sequence[str], data_root: str | Path | None) -> list[Any]:
    """Open each dataset as ``starkit add-dataset`` wrote it, with a clear error for a missing one."""
    from ..data.shards import MANIFEST_NAME, DatasetStore, resolve_dataset_dir

    stores = []
    for name in names:
        path = resolve_dataset_dir(name, data_root)
        if not path.exists():
            raise StarkitError(missing_dataset_message(name, path.parent))
        if not (path / MANIFEST_NAME).is_file():
            raise StarkitError(
                f"dataset {name!r}: {path} has no manifest.json (incomplete?); run `starkit add-dataset {name}` "
                "again (or point --data / $STARKIT_DATA at the folder that holds it)"
            )
        store = DatasetStore.open(path)
        if store.name != name:
            raise StarkitError(f"dataset {name!r}: {path} holds dataset {store.name!r} according to its manifest")
        stores.append(store)
    return stores


def built_datasets(root: Path) -> list[str]:
    """The datasets under the data root ``root`` (folders holding a manifest), sorted."""
    from ..data.shards import MANIFEST_NAME

    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_NAME).is_file())


def provided_datasets() -> list[str]:
    """The datasets the loaded plugins provide (none when the plugins cannot be loaded: this
    only feeds suggestions)."""
    from ..catalog import datasets

    try:
        return sorted(datasets())
    except StarkitError:
        return []


def missing_dataset_message(name: str, root: Path) -> str:
    """Why dataset ``name`` cannot be opened from ``root``, where it is not: the command that
    builds it, or the dataset the user probably meant, with what ``root`` holds."""
    built = built_datasets(root)
    provided = provided_datasets()
    if built:
        there = f"datasets there: {', '.join(built)}"
    else:
        there = "it holds no built dataset" if root.is_dir() else "that folder does not exist"
    if name in provided:
        return (
            f"dataset {name!r} is not in {root}/ ({there}); run `starkit add-dataset {name}` first "
            "(or point --data / $STARKIT_DATA at the folder that holds it)"
        )
    hint = did_you_mean(name, [*built, *(p for p in provided if p not in built)])
    if hint:
        return f"dataset {name!r} is not in {root}/{hint} ({there})"
    return (
        f"dataset {name!r} is not in {root}/, and no plugin provides it ({there}; "
        "`starkit datasets` lists the ones you can add)"
    )


def label_space_of(stores: Sequence[Any]) -> LabelSpace:
    """The joint label space in the order the datasets were listed, from their manifests."""
    return LabelSpace.from_groups([(store.name, store.groups) for store in stores])


def shard_image_size(stores: Sequence[Any], requested: int | None) -> int:
    """The common image size of the shards; ``requested`` must equal it."""
    sizes = {store.name: store.image_size for store in stores}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{n}: {s}px" for n, s in sizes.items())
        largest = max(sizes.values())
        raise ConfigError(
            f"the datasets were stored at different sizes ({listing}); re-run `starkit add-dataset NAME "
            f"--image-size {largest}` for the others so that all match"
        )
    size = next(iter(sizes.values()))
    if requested is not None and requested != size:
        names = ", ".join(sizes)
        name = next(iter(sizes)) if len(sizes) == 1 else "NAME"
        raise ConfigError(
            f"image_size: {requested} requested, but the shards of {names} hold {size}px images; "
            f"train with --image-size {size}, or re-run `starkit add-dataset {name} --image-size {requested}`"
        )
    return size


def _default_data_root() -> Path:
    return Path(os.environ.get("STARKIT_DATA") or "data")


# ---------------------------------------------------------------------------- config
def _family(name: str, registry: Any = None) -> ModelFamily:
    from ..catalog import get_model

    family = get_model(name, registry)
    if family.trainer is None:
        raise ConfigError(f"model: family {name!r} cannot be trained (its plugin provides no trainer)")
    return family


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"--resume: {run_dir} holds no training run (no {CONFIG_NAME})") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    data.pop("starkit_version", None)
    return data


def _family_and_config(run_dir: Path, overrides: dict[str, Any], config_file: str | Path | None, resume: bool,
                       registry: Any) -> tuple[ModelFamily, dict[str, Any], list[str]]:
    """The model family and its resolved config: from the run's saved ``config.json`` with
    ``resume`` (only resumable keys may change), else from defaults, preset, file and flags."""
    file_values = load_config_file(config_file) if config_file is not None else {}
    notes: list[str] = []
    if resume:
        saved = read_run_config(run_dir)
        family = _family(saved.get("model", "stargan"), registry)
        config = resume_config(saved, family.default_config, {**file_values, **overrides}, source=str(run_dir / CONFIG_NAME),
                               options=family.options, retired=family.retired_option, upgrade=family.upgrade_config)
        if not (run_dir / "checkpoints" / LATEST).is_file():
            notes.append(f"{run_dir} has no checkpoint yet: starting from iteration 0 with its saved config")
        return family, config, notes
    if (run_dir / CONFIG_NAME).exists():
        raise RunDirError(f"{run_dir} already holds a training run; pass --resume to continue it, or choose another --out")
    family = _family(overrides.get("model") or file_values.get("model") or "stargan", registry)
    config = resolve_config(family.default_config, file_values, overrides, file_label=f"--config {config_file}",
                            options=family.options, presets=family.presets, retired=family.retired_option)
    return family, config, notes


def prepare_run(
    out: str | Path,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    resume: bool = False,
    registry: Any = None,
) -> RunSetup:
    """Resolve the config, open the datasets and check the run directory, writing nothing.

    ``overrides`` holds command-line values (``None``: not given), including ``datasets`` and
    ``data_root``. With ``resume``, the run's saved ``config.json`` is the base and only
    resumable keys may change.
    """
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir}: exists and is not a folder")
    fingerprint = run_dir_fingerprint(run_dir)  # before reading: a later change is then seen
    family, config, notes = _family_and_config(run_dir, dict(overrides or {}), config_file, resume, registry)
    latest = run_dir / "checkpoints" / LATEST
    if config.get("data_root") is None:
        config["data_root"] = str(_default_data_root().resolve())
    else:
        config["data_root"] = str(Path(config["data_root"]).expanduser().resolve())
    stores = open_datasets(config["datasets"], config["data_root"])
    try:
        config["image_size"] = shard_image_size(stores, config.get("image_size"))
        if family.resolve_config is not None:
            config = family.resolve_config(config)
        space = label_space_of(stores)
        if resume and (run_dir / LABEL_SPACE_NAME).is_file():
            saved_space = LabelSpace.from_json((run_dir / LABEL_SPACE_NAME).read_text(encoding="utf-8"))
            if saved_space != space:
                raise RunDirError(
                    f"--resume: the datasets' label space {space!r} differs from the run's {saved_space!r} "
                    f"({run_dir / LABEL_SPACE_NAME}); were they re-ingested with other attributes?"
                )
        for store in stores:
            if "train" not in store.splits:
                raise StarkitError(f"dataset {store.name!r} ({store.path}) has no train split")
        notes.extend(stale_dataset_notes(stores, registry))
        # Every option the family would reject when training starts is rejected now, before
        # anything is written: a refused run leaves no half-made run folder behind.
        build_on_meta(family, space, config)
    except BaseException:
        for store in stores:
            store.close()
        raise
    return RunSetup(run_dir, config, family, stores, space, latest if resume and latest.is_file() else None, notes,
                    fingerprint=fingerprint)


def plan(setup: RunSetup) -> dict[str, Any]:
    """What ``--dry-run`` reports: label layout, networks and their sizes, datasets, config.
    Builds the networks, so that a bad width or depth fails here — on the meta device, which
    costs neither memory nor initialisation time."""
    from .step import network_summary

    networks = build_on_meta(setup.family, setup.label_space, setup.config)
    return {
        "run_dir": str(setup.run_dir),
        "model": setup.family.name,
        "resume_from": str(setup.resume_from) if setup.resume_from else None,
        "config": setup.config,
        "label_space": {
            "dim": setup.label_space.dim,
            "label_dim": setup.label_space.label_dim,
            "mask_dim": setup.label_space.mask_dim,
            "layout": setup.label_space.describe(),
        },
        "networks": network_summary(networks),
        "datasets": [
            {"name": s.name, "path": str(s.path), "image_size": s.image_size, "counts": {sp: s.count(sp) for sp in s.splits}}
            for s in setup.stores
        ],
        "notes": list(setup.notes),
    }


def build_on_meta(family: ModelFamily, space: LabelSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """The family's networks for ``config``, built on the meta device (no memory, no
    initialisation): the family's checks of every option, depths against the image size
    included, at no cost."""
    import torch

    with torch.device("meta"):
        return family.build(space, config)


# ---------------------------------------------------------------------------- training
def stale_dataset_notes(stores: Sequence[Any], registry: Any = None) -> list[str]:
    """A line for each dataset whose shards were built with another version of its spec than
    the installed plugin declares (e.g. a renderer or preprocessing change since). Training
    reads shards without their plugin, so this is advice, never an error: a dataset no plugin
    provides now, or a plugin that fails, is simply not checked."""
    try:
        from ..catalog import datasets

        provided = datasets(registry)
    except Exception:  # a broken plugin must not stop training on finished shards
        return []
    notes = []
    for store in stores:
        entry = provided.get(store.name)
        built = store.manifest.get("spec_version")
        if entry is None or built is None or str(entry.item.version) == str(built):
            continue
        notes.append(
            f"dataset {store.name!r} ({store.path}) was built with spec version {built}; the installed "
            f"plugin declares version {entry.item.version}. Rebuild it with `starkit add-dataset "
            f"{store.name} --force` to train on what the plugin produces now."
        )
    return notes


def run_dir_fingerprint(run_dir: Path) -> tuple:
    """The identity of the run's ``config.json`` and ``checkpoints/latest.pt`` (None for a
    missing one): if it differs once the folder is locked, another process trained meanwhile."""
    states = []
    for path in (run_dir / CONFIG_NAME, run_dir / "checkpoints" / LATEST):
        try:
            st = path.stat()
        except OSError:
            states.append(None)
        else:
            states.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(states)


@contextmanager
def hold_run_dir(setup: RunSetup) -> Iterator[Any]:
    """Lock the run folder while this process trains in it (see :mod:`starkit.locking`) and
    clean up the temporaries a killed run left there.

    Under torchrun only rank 0 takes the lock: it alone writes the folder, and the ranks of
    one job must not turn each other away. A second job's rank 0 is refused, and torchrun
    then stops that job's other ranks."""
    from ..locking import RUN_LOCK_NAME, lock_folder

    if os.environ.get("RANK", "0") != "0":
        yield None
        return
    run_dir = setup.run_dir
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with lock_folder(run_dir / RUN_LOCK_NAME, f"run folder {run_dir}") as lock:
            if setup.fingerprint is not None and run_dir_fingerprint(run_dir) != setup.fingerprint:
                raise RunDirError(
                    f"{run_dir} changed while this command was starting (another `starkit train` wrote to it); "
                    "run the command again"
                )
            for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
                remove_stale_temps(folder)
            yield lock
    except BaseException:
        if created:  # a run refused before writing anything leaves no empty folder behind
            try:
                run_dir.rmdir()
            except OSError:  # not empty: something was written, keep it
                pass
        raise


def _write_run_files(setup: RunSetup) -> None:
    run_dir = setup.run_dir
    for sub in ("", "checkpoints", "samples"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG_NAME, {**setup.config, "starkit_version": __version__})
    _write_json(run_dir / LABEL_SPACE_NAME, setup.label_space.to_dict())


def train(
    out: str | Path,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    resume: bool = False,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    console: Any = None,
    registry: Any = None,
    handle_sigint: bool = True,
) -> TrainResult:
    """Train (or with ``resume``, continue) the run in ``out``; see :func:`prepare_run`."""
    setup = prepare_run(out, overrides, config_file, resume, registry)
    try:
        return run_setup(setup, callbacks=callbacks, progress=progress, console=console, handle_sigint=handle_sigint)
    finally:
        setup.close()


def run_setup(
    setup: RunSetup,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    console: Any = None,
    handle_sigint: bool = True,
) -> TrainResult:
    """Lock the run folder, build the runtime, step, loader and :class:`Trainer` for
    ``setup`` and run it."""
    from .device import init_runtime

    with hold_run_dir(setup):
        runtime = init_runtime(setup.config["device"])
        try:
            result = _run_on(runtime, setup, callbacks, progress, console, handle_sigint)
        except BaseException:
            runtime.shutdown(clean=False)
            raise
        # _run_on's frame is gone, so the DistributedDataParallel wrappers (which hold the process
        # group) are freed before the group is left; a group torn down during interpreter shutdown
        # instead aborts the process ("terminate called without an active exception").
        runtime.shutdown()
    return result


def _run_on(runtime, setup: RunSetup, callbacks, progress, console, handle_sigint) -> TrainResult:
    from .checkpoint import load_checkpoint
    from .samples import pick_sample_inputs
    from .trainer import Trainer

    config = setup.config
    if config["batch_size"] % runtime.world_size:
        raise ConfigError(
            f"batch_size: {config['batch_size']} images must split evenly over {runtime.world_size} processes"
        )
    if runtime.is_main and console is not None:
        for note in setup.notes:
            console.print(note)
    step = _build_step(runtime, setup, console)
    loader = _training_loader(runtime, setup, getattr(step, "batch_request", None))
    samples = None
    if runtime.is_main and config["sample_every"] > 0:
        samples = pick_sample_inputs(setup.stores, int(config["sample_rows"]))
    trainer = Trainer(
        run_dir=setup.run_dir,
        config=config,
        label_space=setup.label_space,
        model=setup.family.name,
        step=step,
        batches=loader,
        dataset_names=[store.name for store in setup.stores],
        runtime=runtime,
        sample_inputs=samples,
        callbacks=callbacks,
        console=console,
        progress=progress,
        handle_sigint=handle_sigint,
    )
    try:
        if setup.resume_from is not None:
            trainer.restore(load_checkpoint(setup.resume_from), source=setup.resume_from)
        # Written only now that the step, the loader and the restored state exist: an option
        # the step rejects, or an unreadable checkpoint, leaves the folder as it was.
        if runtime.is_main:
            _write_run_files(setup)
        runtime.barrier()
        return trainer.run()
    finally:
        loader.close()


def _build_step(runtime, setup: RunSetup, console):
    """The family's training step, built from the same seed on every process (DDP would
    broadcast rank 0's weights anyway); the random streams then differ per process. Says on
    the main process what the step's "auto" options resolved to."""
    from .device import seed_everything

    config = setup.config
    seed_everything(int(config["seed"]), 0)
    step = setup.family.trainer(setup.label_space, config, runtime)
    # A plugin family's step may have no FastPath, or something else there.
    summary = getattr(getattr(step, "fast", None), "summary", None)
    if runtime.is_main and console is not None and callable(summary):
        console.print(f"{runtime.device} × {runtime.world_size} process(es): {summary()}")
    seed_everything(int(config["seed"]), runtime.rank)
    return step


def _training_loader(runtime, setup: RunSetup, references=None):
    """This process's share of the training batches, alternating between the datasets (with the
    reference images the step asks for, ``references``: a ReferenceRequest)."""
    from ..data.loading import JointLoader, ShardImageDataset

    config = setup.config
    datasets = [
        ShardImageDataset(store, "train", augment=bool(config["augment"]), seed=int(config["seed"]))
        for store in setup.stores
    ]
    return JointLoader(
        datasets,
        batch_size=config["batch_size"] // runtime.world_size,
        num_workers=int(config["workers"]),
        seed=int(config["seed"]),
        pin_memory=runtime.device.type == "cuda",
        rank=runtime.rank,
        world_size=runtime.world_size,
        **({"references": references} if references is not None else {}),
    )
