"""Import the weights released with the authors' StarGAN implementation.

The reference saves ``torch.save(model.state_dict(), "<iter>-G.ckpt")`` (and ``-D.ckpt``). Its
generator is one ``nn.Sequential`` named ``main`` in which every layer, parameter-free ReLUs
and Tanh included, takes an index; each residual block is itself a module holding an
``nn.Sequential`` ``main``. Its discriminator is a ``main`` of conv/LeakyReLU pairs plus two
heads ``conv1`` (D_src) and ``conv2`` (D_cls). Both list their layers in forward order, exactly
as starkit's :class:`~.networks.Generator` and :class:`~.networks.Discriminator` register
theirs, so the translation is derived by walking the two layer lists side by side (no hand-written index table)::

    main.0.weight          -> stem.conv.weight               7×7 conv
    main.1.{weight,…}      -> stem.norm.{weight,…}           instance norm (main.2 is a ReLU)
    main.9.main.0.weight   -> bottleneck.0.conv1.weight      first residual block's first conv
    conv2.weight           -> cls_head.weight                D_cls

Hyper-parameters come from tensor shapes: c_dim and conv_dim from the first convolution,
repeat_num from the number of residual blocks (G) or trunk convolutions (D), and D's image size
from the size of the D_cls kernel. The released CelebA models (128 and 256 px) have c_dim=5
(:data:`REFERENCE_CELEBA_ATTRIBUTES`), conv_dim=64, repeat_num=6; their inputs are CelebA
crops (178×178 centre crop, resized) scaled to [-1, 1], the same range starkit uses.

Normalisation mode: the reference never calls ``eval()``; it translates with G in train mode,
so its instance norms use each image's own statistics. starkit's
:class:`~.networks.InstanceNorm` always does, so an imported G reproduces the
reference's outputs in ``eval()`` mode (and the running statistics carried over are inert).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn

from ...errors import StarkitError
from ...torch_files import read_tensor_file
from .networks import Discriminator, Generator, InstanceNorm, count_parameters
from .released import REFERENCE_ATTRIBUTES
from .options import DEFAULT_MODEL_CONFIG

Which = Literal["G", "D"]

#: Attribute order of the released 5-attribute CelebA models (the reference's defaults).
REFERENCE_CELEBA_ATTRIBUTES = REFERENCE_ATTRIBUTES


class ReferenceCheckpointError(StarkitError, ValueError):
    """A file is not a reference StarGAN checkpoint of the expected kind. The message names the
    file and the offending key."""


# ---------------------------------------------------------------------------------- reference layout
# Layer kinds. Parameter-free kinds still take a Sequential index in the reference.
CONV, TCONV, NORM, RELU, LRELU, TANH = "conv", "transposed conv", "instance norm", "relu", "leaky relu", "tanh"
_PARAMETER_FREE = {RELU, LRELU, TANH}
RESIDUAL_BLOCK_LAYERS: tuple[str, ...] = (CONV, NORM, RELU, CONV, NORM)


def reference_generator_layers(repeat_num: int) -> list[str | tuple[str, ...]]:
    """The reference generator's ``main`` Sequential, one entry per index; a residual block is
    the tuple of the layers of its own inner ``main``."""
    return [
        CONV, NORM, RELU,
        *[CONV, NORM, RELU] * 2,
        *[RESIDUAL_BLOCK_LAYERS] * repeat_num,
        *[TCONV, NORM, RELU] * 2,
        CONV, TANH,
    ]  # fmt: skip


def reference_discriminator_layers(repeat_num: int) -> list[str]:
    """The reference discriminator's ``main`` Sequential (its heads are separate attributes)."""
    return [CONV, LRELU] * repeat_num


def _reference_tensor_layers(which: Which, repeat_num: int) -> list[tuple[str, str]]:
    """``(state-dict prefix, kind)`` of every reference layer that owns tensors, forward order."""
    out: list[tuple[str, str]] = []
    layers = reference_generator_layers(repeat_num) if which == "G" else reference_discriminator_layers(repeat_num)
    for i, layer in enumerate(layers):
        if isinstance(layer, tuple):
            out += [(f"main.{i}.main.{j}", kind) for j, kind in enumerate(layer) if kind not in _PARAMETER_FREE]
        elif layer not in _PARAMETER_FREE:
            out.append((f"main.{i}", layer))
    if which == "D":
        out += [("conv1", CONV), ("conv2", CONV)]
    return out


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.ConvTranspose2d):
        return TCONV
    if isinstance(module, nn.Conv2d):
        return CONV
    if isinstance(module, InstanceNorm):
        return NORM
    raise TypeError(f"no reference counterpart for {type(module).__name__}")


def _starkit_tensor_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(prefix, module)`` of every starkit layer that owns tensors, in registration order,
    which the networks keep equal to forward order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if next(m.parameters(recurse=False), None) is not None or next(m.buffers(recurse=False), None) is not None
    ]


def _key_map(model: Generator | Discriminator) -> dict[str, str]:
    """Reference key -> starkit key for every state-dict entry of ``model``."""
    which: Which = "G" if isinstance(model, Generator) else "D"
    ours = _starkit_tensor_layers(model)
    theirs = _reference_tensor_layers(which, model.repeat_num)
    if len(ours) != len(theirs) or any(_kind(m) != kind for (_, m), (_, kind) in zip(ours, theirs)):
        # A change to the networks that broke the correspondence: a bug, not a user error.
        raise RuntimeError(f"starkit's {which} no longer mirrors the reference layer order")
    mapping: dict[str, str] = {}
    for (our_prefix, module), (their_prefix, _) in zip(ours, theirs):
        for local in module.state_dict():
            mapping[f"{their_prefix}.{local}"] = f"{our_prefix}.{local}"
    return mapping


# ---------------------------------------------------------------------------------- shape inference
def _normalise_which(which: str) -> Which:
    w = str(which).strip().upper()
    if w not in ("G", "D"):
        raise ReferenceCheckpointError(f"which must be 'G' (generator) or 'D' (discriminator), got {which!r}")
    return w  # type: ignore[return-value]


def _looks_like(state_dict: Mapping[str, Any]) -> str:
    """A hint about what a state dict that failed to convert actually is."""
    keys = list(state_dict)
    if any(k.startswith("module.") for k in keys):
        return " (keys start with 'module.': saved from a DataParallel wrapper; strip that prefix)"
    if "conv1.weight" in state_dict or "conv2.weight" in state_dict:
        return " (it looks like a discriminator checkpoint, <iter>-D.ckpt: use which='D')"
    if any(re.match(r"main\.\d+\.main\.", k) for k in keys):
        return " (it looks like a generator checkpoint, <iter>-G.ckpt: use which='G')"
    if any(k.startswith(("stem.", "trunk.")) for k in keys):
        return " (it is already in starkit's layout)"
    return ""


def _tensor(state_dict: Mapping[str, Any], key: str, ndim: int, where: str, what: str) -> Tensor:
    value = state_dict.get(key)
    if value is None:
        raise ReferenceCheckpointError(
            f"{where}: missing key {key!r}; not a reference StarGAN {what} checkpoint{_looks_like(state_dict)}"
        )
    if not isinstance(value, Tensor) or value.dim() != ndim:
        shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ReferenceCheckpointError(f"{where}: key {key!r} should be a {ndim}-d tensor, got {shape}")
    return value


def _infer_generator(state_dict: Mapping[str, Any], where: str) -> dict[str, int]:
    first = _tensor(state_dict, "main.0.weight", 4, where, "generator")
    if first.shape[1] <= 3 or tuple(first.shape[2:]) != (7, 7):
        raise ReferenceCheckpointError(
            f"{where}: 'main.0.weight' has shape {list(first.shape)}; a reference generator's first "
            f"layer is a 7×7 convolution from 3 + c_dim channels{_looks_like(state_dict)}"
        )
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"main\.(\d+)\.main\.", k))}
    return {"c_dim": int(first.shape[1]) - 3, "conv_dim": int(first.shape[0]), "repeat_num": len(blocks)}


def _infer_discriminator(state_dict: Mapping[str, Any], where: str) -> dict[str, int]:
    first = _tensor(state_dict, "main.0.weight", 4, where, "discriminator")
    cls = _tensor(state_dict, "conv2.weight", 4, where, "discriminator")
    convs = {int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"main\.(\d+)\.weight", k))}
    repeat_num = len(convs)
    return {
        "image_size": int(cls.shape[-1]) * 2**repeat_num,
        "conv_dim": int(first.shape[0]),
        "c_dim": int(cls.shape[0]),
        "repeat_num": repeat_num,
    }


def _skeleton(which: Which, hparams: Mapping[str, int]) -> Generator | Discriminator:
    """The starkit network for these hyper-parameters, on the meta device (no memory)."""
    with torch.device("meta"):
        if which == "G":
            return Generator(hparams["c_dim"], hparams["conv_dim"], hparams["repeat_num"])
        return Discriminator(hparams["image_size"], hparams["conv_dim"], hparams["c_dim"], hparams["repeat_num"])


def _listing(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# ---------------------------------------------------------------------------------- public API
def convert_reference_state_dict(
    state_dict: Mapping[str, Any], which: str = "G", *, source: str | Path | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Translate a reference ``Generator`` (``which="G"``) or ``Discriminator`` (``"D"``) state
    dict into starkit's layout.

    Returns ``(state_dict, info)``; ``state_dict`` loads strictly into
    ``Generator(info["c_dim"], info["conv_dim"], info["repeat_num"])`` (or
    ``Discriminator(info["image_size"], info["conv_dim"], info["c_dim"], info["repeat_num"])``).
    ``info`` also names ``which``, ``source``, ``parameters`` and the keys ``filled`` with
    defaults (``num_batches_tracked``, absent from checkpoints saved by PyTorch 0.4.0). Tensors
    are shared, not copied. ``source`` only labels error messages.
    """
    which = _normalise_which(which)
    where = str(source) if source is not None else "reference state dict"
    if not isinstance(state_dict, Mapping):
        raise ReferenceCheckpointError(f"{where}: expected a state dict (a mapping of names to tensors), "
                                       f"got {type(state_dict).__name__}")
    hparams = _infer_generator(state_dict, where) if which == "G" else _infer_discriminator(state_dict, where)
    try:
        skeleton = _skeleton(which, hparams)
    except StarkitError as exc:
        raise ReferenceCheckpointError(f"{where}: inferred an impossible network {hparams}: {exc}") from None
    key_map = _key_map(skeleton)
    network = f"{which} with {hparams}"  # as the error messages name it
    unknown = [k for k in state_dict if k not in key_map]
    if unknown:
        raise ReferenceCheckpointError(
            f"{where}: unexpected key(s) {_listing(unknown)} for a reference {network}{_looks_like(state_dict)}"
        )
    converted, filled = _renamed_tensors(state_dict, key_map, skeleton.state_dict(), where, network)
    info: dict[str, Any] = {
        "which": which,
        "source": str(source) if source is not None else None,
        **hparams,
        "parameters": count_parameters(skeleton),
        "filled": filled,
    }
    return converted, info


def _renamed_tensors(state_dict: Mapping[str, Any], key_map: Mapping[str, str], expected: Mapping[str, Tensor],
                     where: str, network: str) -> tuple[dict[str, Tensor], list[str]]:
    """The reference's tensors under starkit's names (``key_map``: theirs -> ours), each checked
    against the shape ``expected`` holds for it, and the keys filled with defaults: a
    ``num_batches_tracked`` that PyTorch 0.4.0 did not save. Any other missing key, a value
    that is not a tensor or a wrong shape is refused."""
    converted: dict[str, Tensor] = {}
    filled: list[str] = []
    missing: list[str] = []
    for their_key, our_key in key_map.items():
        value = state_dict.get(their_key)
        if value is None:
            if their_key.endswith(".num_batches_tracked"):
                value = torch.zeros((), dtype=torch.long)  # what the reference's IN leaves it at
                filled.append(their_key)
            else:
                missing.append(their_key)
                continue
        if not isinstance(value, Tensor):
            raise ReferenceCheckpointError(f"{where}: key {their_key!r} holds a {type(value).__name__}, not a tensor")
        if value.shape != expected[our_key].shape:
            raise ReferenceCheckpointError(
                f"{where}: key {their_key!r} has shape {list(value.shape)}, expected "
                f"{list(expected[our_key].shape)} for a reference {network}"
            )
        converted[our_key] = value
    if missing:
        raise ReferenceCheckpointError(f"{where}: missing key(s) {_listing(missing)} for a reference {network}")
    return converted, filled


def load_reference_checkpoint(path: str | Path, which: str = "G") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a reference ``<iter>-G.ckpt`` / ``<iter>-D.ckpt`` (safely: ``weights_only=True``,
    onto the CPU) and convert it with :func:`convert_reference_state_dict`."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such checkpoint file")
    state_dict = read_tensor_file(
        path, expected="a reference StarGAN checkpoint (a state dict of tensors, such as the authors' <iter>-G.ckpt)",
        error=ReferenceCheckpointError,
    )
    return convert_reference_state_dict(state_dict, which, source=path)


def load_reference_model(path: str | Path, which: str = "G") -> tuple[Generator | Discriminator, dict[str, Any]]:
    """A starkit :class:`Generator` or :class:`Discriminator` (on the CPU, in eval mode) holding
    the weights of a reference checkpoint, and the ``info`` of
    :func:`convert_reference_state_dict`."""
    state_dict, info = load_reference_checkpoint(path, which)
    model: Generator | Discriminator
    if info["which"] == "G":
        model = Generator(info["c_dim"], info["conv_dim"], info["repeat_num"])
    else:
        model = Discriminator(info["image_size"], info["conv_dim"], info["c_dim"], info["repeat_num"])
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), info


def to_reference_state_dict(model: Generator | Discriminator) -> dict[str, Tensor]:
    """The inverse translation: ``model``'s weights in the reference's layout (detached CPU
    copies), loadable by the reference code's ``load_state_dict``."""
    if not isinstance(model, (Generator, Discriminator)):
        raise TypeError(f"expected a starkit Generator or Discriminator, got {type(model).__name__}")
    keys = ("g_output", "g_upsample", "g_colour_map", "g_skip")
    paper = tuple(DEFAULT_MODEL_CONFIG[key] for key in keys)
    if isinstance(model, Generator) and (model.output, model.upsample, model.colour_map, model.skip) != paper:
        # The reference's G draws the image, up-sampling by transposed convolutions: the other
        # options' layers would not load there.
        raise ReferenceCheckpointError(
            f"the reference generator has no counterpart for output={model.output!r}, "
            f"upsample={model.upsample!r}, colour_map={model.colour_map!r}, skip={model.skip!r} "
            "(it has output='image', upsample='transposed', colour_map='none', skip='none')"
        )
    ours = model.state_dict()
    return {their: ours[our].detach().to("cpu", copy=True) for their, our in _key_map(model).items()}
