"""A model family that is not StarGAN, plugged in through the family seam only: a conditional
autoencoder (``cae``). The worked example of CONTRIBUTING.md's "Writing a model family".

* networks: ``encoder`` (conv, stride 2) and ``decoder`` (the code concatenated with the joint
  label vector, then a transposed conv back to an image);
* training step (:class:`CAEStep`): L1 reconstruction of each image from its own labels, the
  input slightly noised (a denoising autoencoder: the noise comes from the step's own
  generator, so a resumed run draws the same numbers);
* translator (:class:`CAETranslator`): decode an image's code with the target labels; it
  takes one conditioning option, ``scale`` (the target vector is multiplied by it), and has no
  way to predict an input's labels;
* importer: a "foreign" file ``{"attributes": [...], "image_size": int, "dim": int,
  "encoder": state_dict, "decoder": state_dict}`` becomes a checkpoint of one dataset
  ``foreign`` with those binary attributes.

Registered in tests with ``registry.register(CAEPlugin(), "cae")``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from starkit.errors import StarkitError
from starkit.hookspecs import hookimpl
from starkit.inference import SavedModel, TranslateError, Translator
from starkit.model_family import ImportedWeights, ModelFamily

CAE_DEFAULTS = {"cae_dim": 8, "cae_lr": 1e-3, "cae_noise": 0.05}


class Encoder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, dim, 4, 2, 1), nn.ReLU(), nn.Conv2d(dim, dim, 3, 1, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, dim: int, label_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(dim + label_dim, dim, 4, 2, 1), nn.ReLU(),
                                 nn.Conv2d(dim, 3, 3, 1, 1), nn.Tanh())

    def forward(self, code: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.view(c.shape[0], c.shape[1], 1, 1).expand(-1, -1, code.shape[2], code.shape[3])
        return self.net(torch.cat([code, c], dim=1))


def build(label_space: Any, config: Mapping[str, Any]) -> dict[str, nn.Module]:
    dim = int(config["cae_dim"])
    return {"encoder": Encoder(dim), "decoder": Decoder(dim, label_space.dim)}


class CAEStep:
    """The family's StepRunner (starkit.training.step)."""

    def __init__(self, label_space: Any, config: Mapping[str, Any], runtime: Any):
        from starkit.training.device import rank_seed

        self.label_space = label_space
        self.noise = float(config["cae_noise"])
        nets = build(label_space, config)
        self.networks = {name: net.to(runtime.device) for name, net in nets.items()}
        self.encoder, self.decoder = runtime.wrap(self.networks["encoder"]), runtime.wrap(self.networks["decoder"])
        params = [p for net in self.networks.values() for p in net.parameters()]
        self.base_lrs = {"autoencoder": float(config["cae_lr"])}
        self.optimizers = {"autoencoder": torch.optim.Adam(params, lr=self.base_lrs["autoencoder"])}
        self.generators = {"noise": torch.Generator(device=runtime.device)}
        self.generators["noise"].manual_seed(rank_seed(int(config["seed"]), runtime.rank, "cae-noise"))

    def train_step(self, iteration: int, dataset: str, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.label_space.encode(dataset, labels)
        noise = torch.randn(images.shape, generator=self.generators["noise"], device=images.device)
        out = self.decoder(self.encoder(images + self.noise * noise), c)
        loss = (out - images).abs().mean()
        optimizer = self.optimizers["autoencoder"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"decoder/loss_rec": loss.detach()}

    def translate(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return decode(self.networks, images, targets)


def decode(networks: Mapping[str, nn.Module], images: torch.Tensor, targets: Any) -> torch.Tensor:
    """Images re-decoded with ``targets``, without gradients or a change of training mode."""
    modes = {name: net.training for name, net in networks.items()}
    try:
        for net in networks.values():
            net.eval()
        with torch.no_grad():
            c = torch.as_tensor(targets, dtype=torch.float32, device=images.device)
            return networks["decoder"](networks["encoder"](images), c)
    finally:
        for name, net in networks.items():
            net.train(modes[name])


class CAETranslator(Translator):
    def __init__(self, networks: Mapping[str, nn.Module], saved: SavedModel):
        super().__init__(saved.label_space, saved.config["image_size"], saved.device, source=saved.path)
        self._networks = {name: net.to(saved.device).eval() for name, net in networks.items()}

    @property
    def networks(self) -> Mapping[str, nn.Module]:
        return self._networks

    def check_conditioning(self, conditioning: Mapping[str, str]) -> None:
        unknown = sorted(set(conditioning) - {"scale"})
        if unknown:
            raise TranslateError(f"--condition {', '.join(unknown)}: the cae family takes only scale")
        try:
            float(conditioning.get("scale", 1))
        except ValueError:
            raise TranslateError(f"--condition scale={conditioning['scale']}: not a number") from None

    def translate(self, x: torch.Tensor, targets: Any, **conditioning: str) -> torch.Tensor:
        self.check_conditioning(conditioning)
        scale = float(conditioning.get("scale", 1))
        c = torch.as_tensor(targets, dtype=torch.float32, device=self.device)
        return decode(self._networks, x, c * scale)


def translator(saved: SavedModel) -> CAETranslator:
    from starkit.training.checkpoint import CheckpointError

    if saved.weights == "ema":
        raise CheckpointError(f"{saved.path}: the cae family keeps no moving average of its weights")
    return CAETranslator(saved.load_networks({"encoder": "encoder", "decoder": "decoder"}), saved)


def import_weights(path: Any, options: Mapping[str, Any]) -> ImportedWeights:
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup
    from starkit.torch_files import read_tensor_file
    from starkit.training.config import resolve_config

    if options:
        raise StarkitError(f"import-checkpoint --model cae: no option {', '.join(sorted(options))}")
    data = read_tensor_file(path, expected="a foreign cae file")
    space = LabelSpace.from_groups([("foreign", [AttributeGroup("attributes", "binary", tuple(data["attributes"]))])])
    overrides = {"model": "cae", "datasets": ["foreign"], "image_size": int(data["image_size"]), "cae_dim": int(data["dim"])}
    checkpoint = {"label_space": space.to_dict(), "config": resolve_config(CAE_DEFAULTS, overrides=overrides),
                  "networks": {"encoder": data["encoder"], "decoder": data["decoder"]}}
    return ImportedWeights(checkpoint, {"source": str(path), "label_space": space.describe()},
                           f"autoencoder of width {int(data['dim'])}")


class CAEPlugin:
    """The plugin object: one hook, one family."""

    @hookimpl
    def starkit_models(self) -> list[ModelFamily]:
        return [ModelFamily(name="cae", build=build, trainer=CAEStep, default_config=dict(CAE_DEFAULTS),
                            description="conditional autoencoder (test family)", translator=translator,
                            import_weights=import_weights)]
