"""Reference images served by the joint loader (starkit.data.references + JointLoader(references=))."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

from starkit.data.ingest import ingest
from starkit.data.loading import JointLoader, LoaderStateError, ShardImageDataset
from starkit.data.references import ReferencePlan, ReferencePoolError, ReferenceRequest
from starkit.domains import DomainSet
from starkit.errors import StarkitError
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup, DatasetSpec, RawSample

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
SIZE = 8
FACES = (AttributeGroup("face", "binary", ("Male", "Young")),)
EXPR = (AttributeGroup("expression", "onehot", ("happy", "sad", "angry")),)
TAGS = {"faces": 10, "expr": 20}
SPACE = LabelSpace.from_groups([("faces", FACES), ("expr", EXPR)])
# faces:Male=0, faces:Male=1, expr:happy, expr:sad, expr:angry


def encoded(tag: int, index: int, size: int) -> np.ndarray:
    """Red = the image's index, green = its dataset's tag (both unchanged by a flip); blue is
    dark on the left and bright on the right, so a flip shows."""
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = index, tag
    pixels[:, size // 2 :, 2] = 250
    return pixels


def labelled_reader(n: int, groups, tag: int, size: int, source, options):
    width = sum(len(g.attributes) for g in groups)
    for i in range(n):
        if groups[0].kind == "onehot":
            labels = tuple(int(b == i % width) for b in range(width))
        else:
            labels = tuple((i >> b) & 1 for b in range(width))
        yield RawSample(f"img{i:03d}", "train", labels, render=functools.partial(encoded, tag, i, size))


def make_store(root, name, n, groups, size=SIZE):
    spec = DatasetSpec(
        name=name, groups=groups, reader=functools.partial(labelled_reader, n, groups, TAGS[name], size),
        image_size=size, needs_source=False, splits=("train",),
    )
    return ingest(spec, None, root / name, workers=1, progress=False, shard_size=16).path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference-shards")
    return {"faces": make_store(root, "faces", 24, FACES), "expr": make_store(root, "expr", 18, EXPR)}


def loader(stores, references=2, names=("faces", "expr"), augment=True, **kwargs):
    datasets = [ShardImageDataset(stores[n], augment=augment, seed=kwargs.get("seed", 0)) for n in names]
    request = ReferenceRequest(DomainSet(SPACE), per_sample=references) if references else None
    kwargs.setdefault("batch_size", 4)
    return JointLoader(datasets, references=request, **kwargs)


def same_batch(a, b) -> bool:
    return a[0] == b[0] and a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_every_reference_is_an_image_of_its_target_domain(stores):
    domains = DomainSet(SPACE)
    labels = {n: ShardImageDataset(stores[n]).store.labels("train") for n in stores}
    by_tag = {tag: name for name, tag in TAGS.items()}
    data = loader(stores, references=3)
    flips = []
    for _ in range(12):
        d, batch = next(data)
        refs, targets = batch["references"], batch["reference_domains"]
        assert refs.dtype == torch.uint8 and refs.shape == (4, 3, 3, SIZE, SIZE)
        assert targets.dtype == torch.int64 and targets.shape == (4,)
        for b in range(4):
            for r in range(3):
                image = refs[b, r].permute(1, 2, 0).numpy()
                name, index = by_tag[int(image[0, 0, 1])], int(image[0, 0, 0])
                assert domains.of_labels(name, labels[name][index][None])[0] == targets[b]
                plain = encoded(TAGS[name], index, SIZE)
                assert np.array_equal(image, plain) or np.array_equal(image, plain[:, ::-1])
                flips.append(not np.array_equal(image, plain))
    assert 0.25 < np.mean(flips) < 0.75  # augmented like the sources: flipped about half the time


def test_targets_cover_every_joined_domain_from_either_dataset(stores):
    data = loader(stores)
    targets = {0: set(), 1: set()}
    for _ in range(16):
        d, batch = next(data)
        targets[d].update(batch["reference_domains"].tolist())
    # Sources of each dataset are sent to the domains of both (faces:Male=0/1, expr:happy/sad/angry).
    assert targets[0] == targets[1] == {0, 1, 2, 3, 4}
    plan = data._references
    counts = np.bincount(np.concatenate([plan.draw(s, 8).domains for s in range(100)]), minlength=5)
    assert counts.sum() == 800 and counts.min() > 120 and counts.max() < 200  # uniform over domains


def test_a_draw_is_a_function_of_seed_step_rank_and_sample(stores):
    plan = loader(stores)._references
    a, again = plan.draw(7, 6, rank=0), plan.draw(7, 6, rank=0)
    assert all(np.array_equal(getattr(a, f), getattr(again, f)) for f in ("domains", "datasets", "indices", "augment_keys"))
    short = plan.draw(7, 2, rank=0)  # a sample's draw does not depend on the batch size
    assert np.array_equal(short.indices, a.indices[:2]) and np.array_equal(short.domains, a.domains[:2])
    assert not np.array_equal(plan.draw(8, 6).indices, a.indices)
    assert not np.array_equal(plan.draw(7, 6, rank=1).indices, a.indices)
    other_seed = loader(stores, seed=1)._references.draw(7, 6)
    assert not np.array_equal(other_seed.indices, a.indices)
    assert (a.augment_keys >= np.uint64(1 << 63)).all()  # never a source epoch
    assert len(set(a.augment_keys.ravel().tolist())) == a.augment_keys.size


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_gives_the_same_batches_references_included(stores, workers):
    straight = loader(stores, num_workers=workers, seed=5, prefetch_factor=1 if workers else None)
    states, batches = [], []
    for _ in range(14):  # crosses both datasets' epoch boundaries (6 and 4 batches per epoch)
        states.append(straight.state_dict())
        batches.append(next(straight))
    straight.close()
    resumed = loader(stores, num_workers=workers, seed=5, prefetch_factor=1 if workers else None)
    resumed.load_state_dict(states[9])
    assert all(same_batch(next(resumed), batch) for batch in batches[9:])
    assert resumed.state_dict() == straight.state_dict()
    resumed.close()


def test_workers_read_the_same_batches_as_the_main_process(stores):
    alone = loader(stores, seed=3)
    pooled = loader(stores, num_workers=2, seed=3, prefetch_factor=1)
    assert alone.datasets[0].store.open_handles == 0  # planning left no shard open to fork
    assert all(same_batch(next(alone), next(pooled)) for _ in range(8))
    pooled.close()


def test_ranks_draw_their_own_sources_and_references(stores):
    ranks = [loader(stores, rank=rank, world_size=2, seed=2) for rank in range(2)]
    for _ in range(4):
        (d0, b0), (d1, b1) = (next(r) for r in ranks)
        assert d0 == d1
        assert not set(b0["index"].tolist()) & set(b1["index"].tolist())
        assert not torch.equal(b0["references"], b1["references"])


def test_without_references_the_batch_and_state_are_unchanged(stores):
    plain = loader(stores, references=0)
    _, batch = next(plain)
    assert set(batch) == {"image", "labels", "index"} and "references" not in plain.state_dict()


def test_a_domain_without_training_images_is_refused_by_name(stores, tmp_path):
    few = make_store(tmp_path, "expr", 2, EXPR)  # happy and sad only
    with pytest.raises(ReferencePoolError, match=r"domain 'expr:angry' has no training image \(dataset 'expr' has no image"):
        loader({"faces": stores["faces"], "expr": few}, batch_size=2)
    with pytest.raises(ReferencePoolError, match="domain 'expr:happy' .* 'expr' is not among the training datasets"):
        loader(stores, names=("faces",))
    with pytest.raises(ReferencePoolError, match="per_sample must be at least 1"):
        ReferenceRequest(DomainSet(SPACE), per_sample=0)
    with pytest.raises(ReferencePoolError, match="'other' is not one of the domains' datasets"):
        ReferencePlan(ReferenceRequest(DomainSet(SPACE)), ["other"], [np.zeros((1, 2), np.uint8)], seed=0)


def test_references_need_one_image_size(stores, tmp_path):
    large = make_store(tmp_path, "expr", 6, EXPR, size=16)
    with pytest.raises(StarkitError, match="one image size across the datasets"):
        loader({"faces": stores["faces"], "expr": large}, batch_size=2)


def test_a_state_saved_for_other_references_is_refused(stores):
    saved = loader(stores, references=2).state_dict()
    assert saved["references"] == {"per_sample": 2, "domains": list(DomainSet(SPACE).names)}
    with pytest.raises(LoaderStateError, match="references is .*'per_sample': 2.* this loader has .*'per_sample': 3"):
        loader(stores, references=3).load_state_dict(saved)
    with pytest.raises(LoaderStateError, match="references"):
        loader(stores, references=0).load_state_dict(saved)
    other_domains = ReferenceRequest(DomainSet(SPACE, {"faces": "Young"}))
    datasets = [ShardImageDataset(stores[n]) for n in ("faces", "expr")]
    with pytest.raises(LoaderStateError, match="faces:Young=0"):
        JointLoader(datasets, batch_size=4, references=other_domains).load_state_dict(saved)
