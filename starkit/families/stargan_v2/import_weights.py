"""The official implementation's weights as a starkit checkpoint (``starkit import-checkpoint
--model stargan-v2``, the ``stargan-v2`` family's ``import_weights``).

The official code (clovaai/stargan-v2) saves ``<step>_nets_ema.ckpt``: a torch file of the
state dicts ``generator``, ``mapping_network`` and ``style_encoder`` (the moving averages it
translates with; its released AFHQ model is one), and ``<step>_nets.ckpt`` with the trained
weights of the same networks and the ``discriminator``. starkit's networks carry the official
names (:mod:`.networks`), so the state dicts are stored unchanged: a ``_nets_ema.ckpt``'s under
``generator_ema``, ``mapping_network_ema``, ``style_encoder_ema`` (what translation uses by
default), a ``_nets.ckpt``'s under their own names (they are the trained weights, not averages;
translation falls back to them).

The file says nothing about its domains but how many there are (the per-domain heads): the user
names them, in the order the model was trained with (the official code sorts its domain folders
by name; AFHQ: cat, dog, wild). They become one dataset (``afhq`` for AFHQ's names, else
``imported``) with one one-hot group ``domain``. Widths, style and latent sizes and the image
size are read off the weights' shapes. A model with the high-pass filter (``w_hpf`` > 0, the
CelebA-HQ one) is refused: it needs the face-landmark network, which starkit does not ship.

The file is read with ``weights_only=True`` (:func:`starkit.torch_files.read_tensor_file`):
opening it never runs code from it. The checkpoint holds no optimiser state: it translates and
evaluates, but does not resume.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import StarkitError
from ...model_family import ImportedWeights

#: The options ``import_weights`` takes (anything else is refused, naming it).
OPTIONS = ("image_size", "attributes")
#: The official AFHQ model's domains, in its training order (its folders sorted by name).
AFHQ_DOMAINS = ("cat", "dog", "wild")
#: The official ``_nets_ema.ckpt``'s state dicts (moving averages) -> starkit's network names.
AVERAGES_AS = {"generator": "generator_ema", "mapping_network": "mapping_network_ema",
               "style_encoder": "style_encoder_ema"}
#: Every official checkpoint of networks holds these three.
REQUIRED = ("generator", "mapping_network", "style_encoder")
EXPECTED = "an official StarGAN v2 checkpoint (<step>_nets_ema.ckpt)"
#: The label space's one group.
GROUP = "domain"
NO_FAN = ("needs the face-landmark network (FAN), which starkit does not ship; "
          "only models trained without the high-pass filter (w_hpf 0, e.g. AFHQ) can be imported")


class OfficialWeightsError(StarkitError):
    """An official file starkit cannot import; the message names the file and what is wrong."""


def read_official(path: Path) -> dict[str, dict[str, Any]]:
    """The file's state dicts by official name (the three required ones, and the
    discriminator if present), checked to be state dicts of a model without the high-pass filter."""
    import torch

    data = read_file(path)
    generator = data.get("generator")
    if "fan" in data or (isinstance(generator, Mapping) and "hpf.filter" in generator):
        raise OfficialWeightsError(
            f"{path}: this model uses the high-pass filter (w_hpf > 0, e.g. the CelebA-HQ one) and {NO_FAN}")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        if any(isinstance(v, Mapping) and "param_groups" in v for v in data.values()):
            raise OfficialWeightsError(
                f"{path} holds optimiser states (<step>_optims.ckpt); import <step>_nets_ema.ckpt")
        raise OfficialWeightsError(f"{path} is not {EXPECTED}: it lacks {', '.join(missing)} "
                                   f"(it holds {', '.join(map(str, data)) or 'nothing'})")
    states = {}
    for name in (*REQUIRED, "discriminator"):
        state = data.get(name)
        if state is None and name == "discriminator":
            continue
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise OfficialWeightsError(f"{path}: {name!r} is not a state dict (names to tensors)")
        states[name] = dict(state)
    return states


def read_file(path: Path) -> Mapping[str, Any]:
    from ...torch_files import read_tensor_file

    data = read_tensor_file(path, expected=EXPECTED, error=OfficialWeightsError)
    if not isinstance(data, Mapping):
        raise OfficialWeightsError(
            f"{path} is not {EXPECTED}: it holds a {type(data).__name__}, not a dict of state dicts")
    return data


def _shape(state: Mapping[str, Any], key: str, path: Path, name: str) -> tuple[int, ...]:
    if key not in state:
        raise OfficialWeightsError(f"{path}: {name!r} has no {key!r}: not a StarGAN v2 {name.replace('_', ' ')}")
    return tuple(state[key].shape)


def _count(state: Mapping[str, Any], pattern: str) -> int:
    return sum(1 for key in state if re.fullmatch(pattern, key))


def domain_heads(states: Mapping[str, Mapping[str, Any]], path: Path) -> int:
    """The number of domains: the per-domain heads, the same in every network."""
    heads = {"mapping_network": _count(states["mapping_network"], r"unshared\.\d+\.0\.weight"),
             "style_encoder": _count(states["style_encoder"], r"unshared\.\d+\.weight")}
    if "discriminator" in states:
        last = max((k for k in states["discriminator"] if re.fullmatch(r"main\.\d+\.weight", k)),
                   key=lambda k: int(k.split(".")[1]), default="main.0.weight")
        heads["discriminator"] = _shape(states["discriminator"], last, path, "discriminator")[0]
    if len(set(heads.values())) != 1 or not heads["mapping_network"]:
        found = ", ".join(f"{name} {n}" for name, n in heads.items())
        raise OfficialWeightsError(f"{path}: the networks disagree on the number of domains (heads: {found})")
    return heads["mapping_network"]


def read_architecture(states: Mapping[str, Mapping[str, Any]], path: Path) -> dict[str, int]:
    """image_size, conv_dim, max_conv_dim, style_dim, latent_dim and mapping_dim, read off the
    weights' shapes (the exact match is checked afterwards by :func:`check_shapes`)."""
    from .networks import PAPER_NETWORK, doubling_widths

    g, f, e = states["generator"], states["mapping_network"], states["style_encoder"]
    mapping_dim, latent_dim = _shape(f, "shared.0.weight", path, "mapping_network")
    style_dim = _shape(f, "unshared.0.6.weight", path, "mapping_network")[0]
    conv_dim = _shape(g, "from_rgb.weight", path, "generator")[0]
    # G down-samples to 16×16 before its two bottleneck blocks; E down to 4×4: both say the size.
    g_size = 16 * 2 ** max(0, _count(g, r"encode\.\d+\.conv1\.weight") - 2)
    e_blocks = _count(e, r"shared\.\d+\.conv1\.weight")
    if g_size != 4 * 2**e_blocks and g_size > 16:
        raise OfficialWeightsError(f"{path}: the generator is built for {g_size} px but the style encoder for "
                                   f"{4 * 2**e_blocks} px")
    deepest = _shape(e, "unshared.0.weight", path, "style_encoder")[1]
    # The cap on widths shows only where the doubling reaches it; else the paper's cap fits too.
    cap = PAPER_NETWORK["max_conv_dim"]
    if doubling_widths(conv_dim, e_blocks, cap)[-1] != deepest:
        cap = deepest
    return {"image_size": 4 * 2**e_blocks, "conv_dim": conv_dim, "max_conv_dim": cap, "style_dim": style_dim,
            "latent_dim": latent_dim, "mapping_dim": mapping_dim}


def check_shapes(states: Mapping[str, Mapping[str, Any]], num_domains: int, arch: Mapping[str, int],
                 path: Path) -> None:
    """Every state dict names exactly the parameters, of the shapes, of the networks ``arch``
    builds (built on the meta device: no memory, no time)."""
    import torch

    from .networks import build_networks

    with torch.device("meta"):
        nets = build_networks(num_domains, arch)
    for name, state in states.items():
        expected = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        wrong = [k for k in expected if k in found and expected[k] != found[k]]
        problem = (f"lacks {missing[0]}" if missing else f"has an unknown {unexpected[0]}" if unexpected
                   else f"{wrong[0]} is {found[wrong[0]]}, expected {expected[wrong[0]]}" if wrong else "")
        if problem:
            raise OfficialWeightsError(f"{path}: {name!r} is not the official {name.replace('_', ' ')} "
                                       f"({num_domains} domains, {arch['image_size']} px): it {problem}")


def domain_names(options: Mapping[str, Any], num_domains: int, path: Path) -> list[str]:
    names = [str(n) for n in options.get("attributes", AFHQ_DOMAINS)]
    if len(names) != num_domains:
        given = "the default domains are AFHQ's" if "attributes" not in options else "--attrs names"
        raise OfficialWeightsError(
            f"{path}: the model has {num_domains} domains (per-domain heads) but {given} {len(names)} "
            f"({', '.join(names)}); name its {num_domains} domains with --attrs, in the order it was trained "
            "with (the official code sorts its domain folders by name)")
    return names


def domain_label_space(names: Sequence[str]) -> Any:
    """One dataset (``afhq`` for AFHQ's domains, else ``imported``) with the one-hot group ``domain``."""
    from ...labels import LabelSpace
    from ...spec import AttributeGroup

    dataset = "afhq" if sorted(names) == sorted(AFHQ_DOMAINS) else "imported"
    try:
        return LabelSpace.from_groups([(dataset, [AttributeGroup(GROUP, "onehot", tuple(names))])])
    except StarkitError as exc:
        raise OfficialWeightsError(f"--attrs: {exc}") from None


def family_config(arch: Mapping[str, int], dataset: str) -> dict[str, Any]:
    """The run config of the imported model: the paper's options with the weights' widths."""
    from ...training.config import resolve_config
    from .networks import architecture
    from .options import OPTION_FIELDS, PAPER_DEFAULTS

    overrides: dict[str, Any] = {"model": "stargan-v2", "datasets": [dataset], "domains": [f"{dataset}:{GROUP}"],
                                 **arch}
    if architecture({**arch, "conv_dim": 0})["conv_dim"] == arch["conv_dim"]:
        overrides["conv_dim"] = 0  # the official width rule: the config reads as the paper's
    return resolve_config(PAPER_DEFAULTS, overrides=overrides, options=OPTION_FIELDS)


def check_image_size(options: Mapping[str, Any], size: int, path: Path) -> None:
    given = options.get("image_size")
    if given is not None and int(given) != size:
        raise OfficialWeightsError(
            f"--image-size {given}: {path} holds a model for {size} px images (its style encoder halves "
            f"{size} px down to 4×4); use --image-size {size} or leave it out")


def import_weights(path: str | Path, options: Mapping[str, Any]) -> ImportedWeights:
    """Convert an official ``<step>_nets_ema.ckpt`` (or ``<step>_nets.ckpt``); ``options``:
    ``image_size`` (checked against the weights; default what they fit, 256 for the released
    models) and ``attributes`` (the domain names in training order; default AFHQ's)."""
    path = Path(path)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise OfficialWeightsError(f"import-checkpoint --model stargan-v2: no option {', '.join(unknown)}")
    states = read_official(path)
    num_domains = domain_heads(states, path)
    arch = read_architecture(states, path)
    check_image_size(options, arch["image_size"], path)
    check_shapes(states, num_domains, arch, path)
    names = domain_names(options, num_domains, path)
    space = domain_label_space(names)
    dataset = space.names[0]
    # A file with a discriminator is a _nets.ckpt: trained weights, stored under their own names.
    saved_as = {name: name for name in states} if "discriminator" in states else AVERAGES_AS
    parameters = {saved_as[name]: sum(v.numel() for v in state.values()) for name, state in states.items()}
    step = re.match(r"(\d+)_nets", path.name)
    checkpoint = {
        "iteration": 0,
        "label_space": space.to_dict(),
        "config": family_config(arch, dataset),
        "networks": {saved_as[name]: {k: v.contiguous() for k, v in state.items()} for name, state in states.items()},
        "imported_from": {"path": str(path), "domains": names, "step": int(step.group(1)) if step else None,
                          "moving_average": "discriminator" not in states, "parameters": parameters},
    }
    summary = {"source": str(path), "label_space": space.describe(), "image_size": arch["image_size"],
               "domains": [f"{dataset}:{n}" for n in names], "parameters": parameters}
    description = (f"StarGAN v2 at {arch['image_size']} px, {num_domains} domains ({', '.join(names)}); "
                   + ", ".join(f"{name} {n:,}" for name, n in parameters.items()) + " parameters")
    return ImportedWeights(checkpoint, summary, description)
