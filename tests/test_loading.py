"""Training-time reading: ShardImageDataset, JointLoader, to_model_input."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from starkit.data.ingest import ingest
from starkit.data.loading import AUGMENTATIONS, JointLoader, LoaderStateError, ShardImageDataset, to_model_input
from starkit.data.shards import DatasetStore
from starkit.spec import AttributeGroup, DatasetSpec, RawSample

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
SIZE = 8


def asymmetric(value: int) -> np.ndarray:
    """Dark left half, bright right half (so a flip is visible); ``value`` tints the left."""
    pixels = np.full((SIZE, SIZE, 3), 250, np.uint8)
    pixels[:, : SIZE // 2] = value
    return pixels


def counting_reader(n: int, groups: tuple[AttributeGroup, ...], identical: bool, source, options):
    width = sum(len(g.attributes) for g in groups)
    for i in range(n):
        labels = tuple((i >> b) & 1 for b in range(width))
        if groups[0].kind == "onehot":
            labels = tuple(int(b == i % width) for b in range(width))
        render = functools.partial(asymmetric, 0 if identical else i % 200)
        yield RawSample(f"img{i:03d}", "train", labels, render=render)


def make_dataset(root, name, n, groups, identical=False):
    spec = DatasetSpec(
        name=name,
        groups=groups,
        reader=functools.partial(counting_reader, n, groups, identical),
        image_size=SIZE,
        needs_source=False,
        splits=("train",),
    )
    return ingest(spec, None, root / name, workers=1, progress=False, shard_size=16).path


BINARY = (AttributeGroup("face", "binary", ("Male", "Young")),)
ONEHOT = (AttributeGroup("expression", "onehot", ("happy", "sad", "angry")),)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return {
        "a": make_dataset(root, "a", 24, BINARY),
        "b": make_dataset(root, "b", 20, ONEHOT),
        "same": make_dataset(root, "same", 64, BINARY, identical=True),
    }


def is_flipped(image_chw: torch.Tensor) -> bool:
    return bool(image_chw[0, 0, 0] == 250)  # the bright half moved to the left


def test_item_shapes_and_dtypes(stores):
    ds = ShardImageDataset(stores["b"], augment=False)
    item = ds[5]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, SIZE, SIZE)
    assert item["labels"].dtype == torch.float32 and item["labels"].tolist() == [0.0, 0.0, 1.0]
    assert item["index"] == 5 and len(ds) == 20
    assert np.array_equal(item["image"].permute(1, 2, 0).numpy(), asymmetric(5))
    assert ds.attributes == ("happy", "sad", "angry") and ds.groups == ONEHOT and ds.image_size == SIZE


def test_augmentation_is_a_function_of_seed_epoch_index(stores):
    ds = ShardImageDataset(stores["same"], seed=1)
    flips = [is_flipped(ds[i]["image"]) for i in range(64)]
    assert 20 <= sum(flips) <= 44  # about half
    assert flips == [is_flipped(ds[(0, i)]["image"]) for i in range(64)]  # reproducible
    ds.set_epoch(1)
    assert flips != [is_flipped(ds[i]["image"]) for i in range(64)]  # a new epoch, new flips
    other = ShardImageDataset(stores["same"], seed=2)
    assert flips != [is_flipped(other[i]["image"]) for i in range(64)]


def test_robust_augmentation_reframes_and_recolours_reproducibly(stores):
    plain = ShardImageDataset(stores["same"], augment=False)
    robust = ShardImageDataset(stores["same"], seed=1, transforms=AUGMENTATIONS["robust"]())
    original = plain[0]["image"]
    outs = [robust[i]["image"] for i in range(32)]
    assert all(o.shape == original.shape and o.dtype == torch.uint8 for o in outs)
    # Every image of this dataset is the same, so all differences come from the pipeline:
    # more than a flip (at most two distinct results) ...
    assert len({o.numpy().tobytes() for o in outs}) > 16
    # ... including colour: the mean brightness moves, which neither a flip nor a shift with
    # reflected borders would do by much.
    means = [o.float().mean().item() for o in outs]
    assert max(means) - min(means) > 20
    # and it is a function of (seed, epoch, index), like the flip.
    assert all(torch.equal(o, robust[(0, i)]["image"]) for i, o in enumerate(outs[:4]))
    assert set(AUGMENTATIONS) == {"flip", "robust"}


def test_round_robin_batches_and_epoch_coverage(stores):
    loader = JointLoader([ShardImageDataset(stores["a"]), ShardImageDataset(stores["b"])], batch_size=4, seed=3)
    assert loader.batches_per_epoch == [6, 5]
    seen = {0: [], 1: []}
    for step in range(22):
        d, batch = next(loader)
        assert d == step % 2
        assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["image"].dtype == torch.uint8
        assert batch["labels"].shape == (4, 2 if d == 0 else 3) and batch["labels"].dtype == torch.float32
        assert batch["index"].dtype == torch.int64
        seen[d].append(batch["index"].tolist())
    assert sorted(sum(seen[0][:6], [])) == list(range(24))  # one epoch = one permutation
    assert sorted(sum(seen[1][:5], [])) == list(range(20))
    assert seen[0][6:11] != seen[0][:5]  # reshuffled for epoch 1
    assert loader.epochs() == [1, 2]  # a: 11 batches consumed (6 + 5); b: 11 (5 + 5 + 1)


def test_resume_from_state_dict_gives_identical_batches(stores):
    def loader():
        return JointLoader([ShardImageDataset(stores["a"]), ShardImageDataset(stores["b"])], batch_size=4, seed=5)

    straight = loader()
    batches, states = [], []
    for _ in range(20):  # crosses epoch boundaries of both datasets
        states.append(straight.state_dict())
        batches.append(next(straight))
    resumed = loader()
    resumed.load_state_dict(states[9])
    for d, batch in batches[9:]:
        d2, batch2 = next(resumed)
        assert d2 == d and torch.equal(batch2["index"], batch["index"])
        assert torch.equal(batch2["image"], batch["image"]) and torch.equal(batch2["labels"], batch["labels"])
    assert resumed.state_dict() == straight.state_dict()


def test_rewind_with_persistent_workers(stores):
    loader = JointLoader(
        [ShardImageDataset(stores["a"]), ShardImageDataset(stores["b"])], batch_size=4, num_workers=2, seed=9
    )
    for _ in range(5):
        next(loader)
    state = loader.state_dict()
    ahead = [next(loader) for _ in range(6)]  # workers have prefetched beyond these by now
    loader.load_state_dict(state)
    for d, batch in ahead:
        d2, batch2 = next(loader)
        assert d2 == d and torch.equal(batch2["index"], batch["index"]) and torch.equal(batch2["image"], batch["image"])
    workers = list(loader._loader._iterator._workers)
    loader.close()
    assert not any(w.is_alive() for w in workers)


def test_state_from_another_loader_is_refused(stores):
    a = JointLoader([ShardImageDataset(stores["a"])], batch_size=4)
    b = JointLoader([ShardImageDataset(stores["b"])], batch_size=4)
    with pytest.raises(LoaderStateError, match="saved for datasets"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(LoaderStateError, match="batch_size"):
        JointLoader([ShardImageDataset(stores["a"])], batch_size=2).load_state_dict(a.state_dict())


def test_ranks_take_disjoint_shares(stores):
    shares = []
    for rank in range(3):
        loader = JointLoader([ShardImageDataset(stores["b"])], batch_size=2, seed=7, rank=rank, world_size=3)
        assert loader.batches_per_epoch == [3]  # 20 // 3 = 6 images per rank
        shares.append(sum((next(loader)[1]["index"].tolist() for _ in range(3)), []))
    flat = sum(shares, [])
    assert len(flat) == len(set(flat)) == 18


def test_too_small_for_a_batch_is_an_error(stores):
    from starkit.errors import StarkitError

    with pytest.raises(StarkitError, match="too few for one batch of 32"):
        JointLoader([ShardImageDataset(stores["b"])], batch_size=32)


class NaiveFlips(Dataset):
    """What the loader must not do: one unseeded albumentations pipeline shared by fork."""

    def __init__(self, path):
        import albumentations as A

        self.store = DatasetStore.open(path)
        self.pipeline = A.Compose([A.HorizontalFlip(p=0.5)])

    def __len__(self):
        return self.store.count("train")

    def __getitem__(self, i):
        image, _ = self.store.read_image_labels("train", i)
        return torch.from_numpy(self.pipeline(image=image)["image"]).permute(2, 0, 1)


def worker_halves(flips_per_batch):
    # DataLoader hands batches to workers in turn: even batches to worker 0, odd to worker 1.
    return flips_per_batch[0::2], flips_per_batch[1::2]


def test_workers_do_not_repeat_augmentations(stores):
    naive = DataLoader(NaiveFlips(stores["same"]), batch_size=8, num_workers=2, multiprocessing_context="fork")
    flips = [[is_flipped(x) for x in batch] for batch in naive]
    first, second = worker_halves(flips)
    assert first == second  # the failure mode this loader exists to avoid is real

    def epoch_of_flips():
        loader = JointLoader(
            [ShardImageDataset(stores["same"], seed=11)], batch_size=8, num_workers=2, seed=11, prefetch_factor=1
        )
        flips = [[is_flipped(x) for x in next(loader)[1]["image"]] for _ in range(8)]
        loader.close()
        return flips

    flips = epoch_of_flips()
    first, second = worker_halves(flips)
    assert first != second
    assert 20 <= sum(map(sum, flips)) <= 44
    assert epoch_of_flips() == flips  # reproducible with workers too


class PidReporting(ShardImageDataset):
    def __getitem__(self, key):
        item = super().__getitem__(key)
        item["pid"] = os.getpid()
        item["handle_pid"] = self.store._pid
        item["handles"] = self.store.open_handles
        return item


def test_hdf5_is_opened_only_in_workers(stores):
    import h5py

    def open_files() -> int:
        return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)

    before = open_files()
    ds = PidReporting(stores["a"])
    assert ds.store.open_handles == 0 and open_files() == before
    loader = JointLoader([ds], batch_size=4, num_workers=2, prefetch_factor=1)
    pids = set()
    for _ in range(4):
        _, batch = next(loader)
        assert torch.equal(batch["handle_pid"], batch["pid"]) and (batch["handles"] >= 1).all()
        pids.update(batch["pid"].tolist())
    assert os.getpid() not in pids and len(pids) == 2
    assert ds.store.open_handles == 0 and open_files() == before  # the parent never opened a shard
    loader.close()

    ds[0]  # now the parent holds a handle; new workers must still open their own
    assert ds.store.open_handles == 1
    loader = JointLoader([ds], batch_size=4, num_workers=2, prefetch_factor=1)
    _, batch = next(loader)
    assert (batch["pid"] != os.getpid()).all() and torch.equal(batch["handle_pid"], batch["pid"])
    loader.close()
    ds.store.close()


class CollectingInWorkers(ShardImageDataset):
    """Runs a full garbage collection in the worker before each item, as Python may at any time."""

    def __getitem__(self, key):
        import gc

        gc.collect()
        return super().__getitem__(key)


class _Cycle:
    """Part of a reference cycle; notes the process that finalises it (the stand-in for a
    CUDA tensor, whose freeing aborts a forked worker)."""

    def __init__(self, log):
        self.log, self.me = log, self

    def __del__(self):
        self.log.write_text(self.log.read_text() + f"{os.getpid()}\n")


def test_workers_never_collect_the_parents_garbage(stores, tmp_path):
    import gc

    log = tmp_path / "finalised"
    log.write_text("")
    gc.disable()  # keep the cycle uncollected until the workers fork
    try:
        _Cycle(log)  # unreachable at once, freed only by a cyclic collection
        loader = JointLoader([CollectingInWorkers(stores["a"])], batch_size=4, num_workers=2, prefetch_factor=1)
        next(loader)
        loader.close()
    finally:
        gc.enable()
    gc.collect()
    # Finalised once, by this process, before the workers forked; never in a worker.
    assert log.read_text().split() == [str(os.getpid())]


def test_to_model_input_range():
    images = torch.tensor([[[[0, 255], [128, 64]]]], dtype=torch.uint8).expand(2, 3, 2, 2)
    x = to_model_input(images, "cpu")
    assert x.dtype == torch.float32 and x.shape == (2, 3, 2, 2)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    reference = images.float() / 255.0 * 2 - 1  # ToTensor + Normalize(0.5, 0.5)
    assert torch.allclose(x, reference, atol=1e-6)


def test_a_damaged_image_stops_the_loader_with_a_one_line_message(tmp_path, flip_image_bytes):
    from starkit.data.shards import ShardError

    path = make_dataset(tmp_path, "a", 8, BINARY)
    flip_image_bytes(path / "shard-train-00000.h5", 5)
    dataset = ShardImageDataset(path, augment=False)
    for workers in (0, 1):  # raised here, and raised in a worker process and re-raised here
        loader = JointLoader([dataset], batch_size=8, num_workers=workers)
        with pytest.raises(ShardError) as caught:
            next(loader)
        loader.close()
        message = str(caught.value)
        assert message.startswith("dataset 'a': image 5 (img005) of shard "), message
        assert "shard-train-00000.h5 is damaged" in message and "\n" not in message
