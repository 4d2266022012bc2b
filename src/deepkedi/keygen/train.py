"""ZZ-GAN training (seed paper Sec. 3, Fig. 3): key generator against a cipher-image discriminator.

One step, for a batch of ``B`` training crops:

1. **Noisy plain images.** Each crop (min–max scaled to [0, 1]) gets the paper's
   speckle (:func:`~deepkedi.transforms.speckle.add_speckle`, uniform, variance
   0.05), is clipped to [0, 1] and quantised to 8 bits, ``x``.
2. **Zigzag.** Crop ``i`` is scanned in pattern ``i mod 3`` (vertical,
   horizontal, diagonal: every batch holds all three, as the paper's generator
   does, Fig. 4) and split into its 8 bit planes.
3. **Keys.** The generator maps each crop (the initial image) and *two*
   latent noise maps from different seeds to soft key bits ``k = sigmoid(logits)``.
4. **Cipher images** through the differentiable XOR surrogate
   :func:`~deepkedi.keygen.models.soft_xor` on the low 8 key planes
   (exact for hard bits): ``c_b = x_b + k_b - 2 x_b k_b``. The discriminator is
   shown the cipher of the *hard* key bits with the soft bits' gradient
   (straight-through estimator [2]_); the reconstruction loss uses the soft ones.
5. **Discriminator** (LSGAN [1]_): target domain = uniform 8-bit noise images
   from a ChaCha20 stream (a CSPRNG; keyed by the training seed so runs
   reproduce). A secure cipher image should be indistinguishable from them.

Generator loss, the sum of weighted terms (``TrainConfig.weights``):

- ``adversarial``: ``mean((D(c) - 1)^2)``: cipher images should look like the
  target domain.
- ``reconstruction`` (the paper's reconstruction loss): L1 between the plain
  image and the XOR-decryption of ``c`` with the same soft key. Decryption is
  ``x + 2k(1 - k)(1 - 2x)``, so the loss vanishes exactly when every key bit is
  decided: it drives the soft bits to 0 or 1.
- ``uniformity``: per key, the expected histogram of each key byte (low and
  high planes), ``h_v = mean_pixels prod_b P(bit_b = v_b)``, against the flat
  ``1/256``: ``256 sum_v (h_v - 1/256)^2``. It balances every plane *and* removes
  dependence between the planes of one pixel, which per-plane balance cannot.
- ``decorrelation``: squared Pearson correlation of the soft key bytes with
  their horizontal, vertical and diagonal neighbours (the paper's adjacent
  correlation, Table 6), averaged.
- ``diversity``: the two keys of one crop (different seeds) should agree on
  half of the bits of every plane: ``4 mean_b (agreement_b - 1/2)^2``. Without
  it a generator may let the image rather than the seed decide some planes
  (typically the high ones), and keys of different seeds come out alike.

The ablation in ``docs/ZZGAN.md`` (``bench/ablation_zzgan.py``) trains without
each term in turn and measures what it costs.

Reproducible: the same config, seed, data, torch build and thread count give
the same weights (crops, speckle and target noise come from seeded generators,
latent maps from :func:`~deepkedi.keygen.generate.latent_noise`).

References
----------
.. [1] X. Mao, Q. Li, H. Xie, R. Y. K. Lau, Z. Wang and S. P. Smolley, "Least
   squares generative adversarial networks", ICCV 2017. :doi:`10.1109/ICCV.2017.304`
.. [2] Y. Bengio, N. Léonard and A. Courville, "Estimating or propagating gradients
   through stochastic neurons for conditional computation", arXiv:1308.3432 (2013).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from deepkedi.errors import FormatError
from deepkedi.fileio import atomic_output
from deepkedi.inputs import check_regular_input
from deepkedi.keygen.generate import initial_image, latent_noise
from deepkedi.keygen.models import (
    DiscriminatorConfig,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    soft_xor,
)
from deepkedi.keystream import chacha20_keystream
from deepkedi.transforms.speckle import PAPER_LEVEL, PAPER_MODEL, add_speckle
from deepkedi.transforms.zigzag import ZigzagPattern, scan_order

__all__ = [
    "LOSS_TERMS",
    "PRESETS",
    "StepReport",
    "TrainConfig",
    "Trainer",
    "default_training_planes",
    "export_generator",
    "folder_training_planes",
    "generator_losses",
]

#: Weighted terms of the generator loss, in the order they are reported.
LOSS_TERMS: Final = ("adversarial", "reconstruction", "uniformity", "decorrelation", "diversity")
_TARGET_LABEL: Final = b"deepkedi/v1 zz-gan target domain"
_PATTERNS: Final = (ZigzagPattern.VERTICAL, ZigzagPattern.HORIZONTAL, ZigzagPattern.DIAGONAL)
_EPS: Final = 1e-6


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (recorded in checkpoints and exported configs).

    Parameters
    ----------
    steps, batch_size, crop
        Optimiser steps, crops per step, crop side in pixels.
    learning_rate, betas
        Adam settings of both networks (CycleGAN's 2e-4, (0.5, 0.999)).
    seed
        Seeds crops, speckle, latent maps, target noise and initial weights.
    weights
        Weight of each generator loss term (:data:`LOSS_TERMS`); 0 drops a term.
    generator, discriminator
        Architectures.
    """

    steps: int = 1500
    batch_size: int = 8
    crop: int = 64
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 2026
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "adversarial": 1.0,
            "reconstruction": 10.0,
            "uniformity": 100.0,
            "decorrelation": 10.0,
            "diversity": 100.0,
        }
    )
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.crop < 8:
            raise ValueError("steps must be >= 0, batch_size >= 1 and crop >= 8")
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {LOSS_TERMS}")
        if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
            raise ValueError("loss weights must be finite and >= 0")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["betas"] = tuple(data.get("betas", (0.5, 0.999)))
        data["generator"] = GeneratorConfig(**data.get("generator", {}))
        data["discriminator"] = DiscriminatorConfig(**data.get("discriminator", {}))
        return cls(**data)


#: Named recipes: ``shipped`` made the weights inside the package; ``tiny`` is for tests.
PRESETS: Final[dict[str, TrainConfig]] = {
    "shipped": TrainConfig(),
    "tiny": TrainConfig(
        steps=3,
        batch_size=2,
        crop=16,
        generator=GeneratorConfig(base_channels=4, residual_blocks=1),
        discriminator=DiscriminatorConfig(base_channels=4, layers=2),
    ),
}


# --------------------------------------------------------------------------- data


def default_training_planes() -> list[tuple[str, np.ndarray]]:
    """Training planes from the sample corpus and the phantoms: ``(name, (H, W) float32 in [0, 1])``.

    Every corpus file (middle plane of stacks; palette and ramp test patterns
    included, they are real files) and every phantom kind at seeds 0-2.
    """
    from deepkedi.datasets import PHANTOM_KINDS, phantom, sample_corpus
    from deepkedi.imaging import read_image

    planes = [(sample.name, initial_image(read_image(sample.path))) for sample in sample_corpus()]
    for organ, modality in PHANTOM_KINDS:
        for seed in range(3):
            planes.append((f"phantom-{organ}-{modality}-{seed}", initial_image(phantom(organ, modality, seed=seed))))
    return planes


def folder_training_planes(folder: str | Path) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """Planes of every readable image under ``folder`` (recursively) and the files that were skipped."""
    from deepkedi.errors import DeepKediError
    from deepkedi.imaging import read_image

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    planes, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            planes.append((str(path.relative_to(root)), initial_image(read_image(path))))
        except (DeepKediError, ValueError, OSError):
            skipped.append(str(path.relative_to(root)))
    if not planes:
        raise ValueError(f"no readable images under {root}")
    return planes, skipped


def _ensure_size(plane: np.ndarray, crop: int) -> np.ndarray:
    """Pad a plane smaller than the crop by mirroring, so that every plane yields crops."""
    ph, pw = max(0, crop - plane.shape[0]), max(0, crop - plane.shape[1])
    return np.pad(plane, ((0, ph), (0, pw)), mode="symmetric") if ph or pw else plane


def _target_noise(seed: int, step: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform 8-bit noise images in [0, 1] from ChaCha20: the target domain of the discriminator."""
    key = hashlib.sha256(_TARGET_LABEL + seed.to_bytes(16, "big", signed=False) + step.to_bytes(8, "big")).digest()
    data = np.frombuffer(chacha20_keystream(key, int(np.prod(shape))), dtype=np.uint8)
    return (data.astype(np.float32) / 255.0).reshape(shape)


def _latent_seed(seed: int, step: int, index: int) -> int:
    """A distinct 128-bit latent seed for crop ``index`` of ``step``."""
    digest = hashlib.sha256(b"deepkedi/v1 zz-gan training latent" + f"{seed}/{step}/{index}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


# --------------------------------------------------------------------------- losses


def _bit_planes(words: torch.Tensor, bits: int) -> torch.Tensor:
    """``(N, H, W)`` integer words → ``(N, bits, H, W)`` float bits, least significant first."""
    shifts = torch.arange(bits, device=words.device).view(1, bits, 1, 1)
    return ((words.unsqueeze(1) >> shifts) & 1).to(torch.float32)


def _from_planes(planes: torch.Tensor) -> torch.Tensor:
    """Soft bit planes ``(N, 8, H, W)`` → soft byte values in [0, 1], ``(N, 1, H, W)``."""
    weights = (2.0 ** torch.arange(planes.shape[1], device=planes.device)).view(1, -1, 1, 1)
    return (planes * weights).sum(dim=1, keepdim=True) / (2.0 ** planes.shape[1] - 1)


def _byte_histogram_loss(soft: torch.Tensor) -> torch.Tensor:
    """``256 sum_v (h_v - 1/256)^2`` of the expected byte histogram of each key, averaged over keys.

    Bits are independent given the logits, so a pixel's byte distribution is the
    outer product of its two nibble distributions and the mean over pixels is one
    ``(16, HW) @ (HW, 16)`` product per key.
    """
    _, bits, h, w = soft.shape
    table = ((torch.arange(16, device=soft.device).unsqueeze(1) >> torch.arange(4, device=soft.device)) & 1).to(
        soft.dtype
    )  # (16, 4): bits of each nibble value

    def nibble(p: torch.Tensor) -> torch.Tensor:  # (n, 4, H, W) → (n, HW, 16)
        p = p.flatten(2).transpose(1, 2)
        return torch.exp(torch.log(p + _EPS) @ table.T + torch.log(1 - p + _EPS) @ (1 - table).T)

    losses = []
    for start in range(0, bits - 7, 8):
        low, high = nibble(soft[:, start : start + 4]), nibble(soft[:, start + 4 : start + 8])
        hist = low.transpose(1, 2) @ high / (h * w)  # (n, 16, 16): P(low nibble, high nibble)
        losses.append(256 * ((hist - 1 / 256) ** 2).sum(dim=(1, 2)).mean())
    return torch.stack(losses).mean()


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1) - a.flatten(1).mean(dim=1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1) + _EPS)


def _adjacent_correlation_loss(soft: torch.Tensor) -> torch.Tensor:
    """Mean squared adjacent correlation (horizontal, vertical, diagonal) of the soft key bytes."""
    terms = []
    for start in range(0, soft.shape[1] - 7, 8):
        value = _from_planes(soft[:, start : start + 8])[:, 0]
        for a, b in (
            (value[:, :, :-1], value[:, :, 1:]),
            (value[:, :-1, :], value[:, 1:, :]),
            (value[:, :-1, :-1], value[:, 1:, 1:]),
        ):
            terms.append((_pearson(a, b) ** 2).mean())
    return torch.stack(terms).mean()


def generator_losses(
    soft_keys: torch.Tensor,
    soft_keys_other_seed: torch.Tensor,
    plain_planes: torch.Tensor,
    discriminator: nn.Module | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every generator loss term (see the module docstring) and the cipher images.

    Parameters
    ----------
    soft_keys, soft_keys_other_seed
        Soft key bits ``(B, bits, H, W)`` of the same crops under two seeds.
    plain_planes
        Bit planes ``(B, 8, H, W)`` of the zigzag-scanned noisy plain crops.
    discriminator
        Scores cipher images; ``None`` leaves the adversarial term at 0.

    Returns
    -------
    (terms, cipher)
        ``terms`` maps each of :data:`LOSS_TERMS` to a scalar tensor; ``cipher``
        is ``(B, 1, H, W)`` in [0, 1].
    """
    key8 = soft_keys[:, :8]
    cipher_planes = soft_xor(plain_planes, key8)
    decrypted = _from_planes(soft_xor(cipher_planes, key8))
    # The discriminator sees the cipher image the hard key makes (straight-through: hard bits
    # forward, the soft bits' gradient backward). Shown soft cipher values it would only learn
    # to spot softness, which real cipher images never have.
    hard = (key8 > 0.5).to(key8.dtype)
    cipher = _from_planes(soft_xor(plain_planes, hard + key8 - key8.detach()))
    zero = cipher.new_zeros(())
    # Per key and bit plane: a plane decided by the image rather than the seed agrees across seeds.
    agreement = (soft_keys * soft_keys_other_seed + (1 - soft_keys) * (1 - soft_keys_other_seed)).mean(dim=(2, 3))
    both = torch.cat([soft_keys, soft_keys_other_seed])
    terms = {
        "adversarial": ((discriminator(cipher) - 1) ** 2).mean() if discriminator is not None else zero,
        "reconstruction": (decrypted - _from_planes(plain_planes)).abs().mean(),
        "uniformity": _byte_histogram_loss(both),
        "decorrelation": _adjacent_correlation_loss(both),
        "diversity": ((agreement - 0.5) ** 2).mean() * 4,
    }
    return terms, cipher


# --------------------------------------------------------------------------- training loop


@dataclass(frozen=True)
class StepReport:
    """Losses after one step (floats), for progress display and logs."""

    step: int
    steps: int
    generator: dict[str, float]
    discriminator: float


class Trainer:
    """Runs, checkpoints and resumes ZZ-GAN training.

    Parameters
    ----------
    config
        The recipe.
    planes
        Training planes ``(name, (H, W) float32 in [0, 1])``; default
        :func:`default_training_planes`.
    device
        ``"cpu"``, ``"cuda"``…; default CUDA when available.
    """

    def __init__(
        self,
        config: TrainConfig,
        planes: Sequence[tuple[str, np.ndarray]] | None = None,
        *,
        device: str | None = None,
        data_description: str = "sample corpus and phantoms",
    ) -> None:
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        named = list(planes) if planes is not None else default_training_planes()
        if not named:
            raise ValueError("no training planes")
        self.plane_names = [name for name, _ in named]
        self.planes = [_ensure_size(np.asarray(p, dtype=np.float32), config.crop) for _, p in named]
        self.data_description = data_description
        torch.manual_seed(config.seed)
        self.generator = build_generator(config.generator).to(self.device)
        self.discriminator = build_discriminator(config.discriminator).to(self.device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.learning_rate, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.learning_rate, betas=config.betas)
        self.step = 0
        orders = [scan_order(config.crop, config.crop, pattern) for pattern in _PATTERNS]
        self._orders = [torch.as_tensor(np.array(o, dtype=np.int64), device=self.device) for o in orders]

    # -- one batch ---------------------------------------------------------------------------
    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, step])
        crops, plain = [], []
        for i in range(cfg.batch_size):
            plane = self.planes[rng.integers(len(self.planes))]
            r = rng.integers(plane.shape[0] - cfg.crop + 1)
            c = rng.integers(plane.shape[1] - cfg.crop + 1)
            crop = plane[r : r + cfg.crop, c : c + cfg.crop]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            noisy = np.clip(add_speckle(crop, model=PAPER_MODEL, level=PAPER_LEVEL, rng=rng), 0.0, 1.0)
            words = np.rint(noisy * 255).astype(np.int64)
            # Zigzag scan of the crop in pattern i mod 3 (the scanned sequence laid out row by row).
            order = self._orders[i % len(_PATTERNS)]
            scanned = torch.as_tensor(words.reshape(-1), device=self.device)[order].view(cfg.crop, cfg.crop)
            crops.append(np.ascontiguousarray(crop))
            plain.append(scanned)
        channels = cfg.generator.latent_channels
        shape = (channels, cfg.crop, cfg.crop)
        z1 = [latent_noise(_latent_seed(cfg.seed, step, 2 * i), shape) for i in range(cfg.batch_size)]
        z2 = [latent_noise(_latent_seed(cfg.seed, step, 2 * i + 1), shape) for i in range(cfg.batch_size)]
        image = torch.as_tensor(np.stack(crops)[:, None], device=self.device)
        latent = torch.as_tensor(np.stack(z1 + z2), device=self.device)
        plain_planes = _bit_planes(torch.stack(plain), 8)
        return (
            image,
            latent,
            plain_planes,
            torch.as_tensor(_target_noise(cfg.seed, step, (cfg.batch_size, 1, cfg.crop, cfg.crop)), device=self.device),
        )

    def train_step(self) -> StepReport:
        """One generator and one discriminator update."""
        cfg = self.config
        image, latent, plain_planes, target = self._batch(self.step)
        b = image.shape[0]
        self.generator.train()
        logits = self.generator(torch.cat([image, image]), latent)
        soft = torch.sigmoid(logits)
        use_adv = cfg.weights.get("adversarial", 0.0) > 0
        terms, cipher = generator_losses(soft[:b], soft[b:], plain_planes, self.discriminator if use_adv else None)
        weighted = [cfg.weights.get(name, 0.0) * value for name, value in terms.items()]
        total = sum(weighted[1:], weighted[0])  # a tensor start: the sum is a tensor, with no int 0 before it
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()

        d_loss = 0.0
        if use_adv:
            real, fake = self.discriminator(target), self.discriminator(cipher.detach())
            loss_d = 0.5 * (((real - 1) ** 2).mean() + (fake**2).mean())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            d_loss = float(loss_d.detach())
        self.step += 1
        return StepReport(self.step, cfg.steps, {name: float(v.detach()) for name, v in terms.items()}, d_loss)

    def run(
        self,
        on_step: Callable[[StepReport], None] | None = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 250,
    ) -> list[StepReport]:
        """Train until ``config.steps``; call ``on_step`` after each step; checkpoint periodically and at the end."""
        reports = []
        while self.step < self.config.steps:
            report = self.train_step()
            reports.append(report)
            if on_step is not None:
                on_step(report)
            if checkpoint is not None and (self.step % checkpoint_every == 0 or self.step == self.config.steps):
                self.save_checkpoint(checkpoint)
        return reports

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> None:
        """Weights, optimiser states, step and config, written atomically (``torch.save``)."""
        state = {
            "format": "deepkedi zz-gan checkpoint 1",
            "config": json.dumps(self.config.to_dict()),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }
        with atomic_output(Path(path), force=True) as fh:
            torch.save(state, fh)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        planes: Sequence[tuple[str, np.ndarray]] | None = None,
        *,
        device: str | None = None,
        steps: int | None = None,
        data_description: str = "sample corpus and phantoms",
    ) -> Trainer:
        """A trainer restored from a checkpoint (``weights_only=True``); ``steps`` may extend the run."""
        try:
            state = torch.load(check_regular_input(path, error=FormatError), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, AttributeError) as exc:
            # torch.load reports a damaged archive or pickle in any of these.
            raise FormatError(f"{path}: not a readable ZZ-GAN checkpoint ({str(exc).splitlines()[0][:200]})") from None
        if not isinstance(state, dict) or state.get("format") != "deepkedi zz-gan checkpoint 1":
            raise FormatError(f"{path} is not a ZZ-GAN checkpoint")
        config = TrainConfig.from_dict(json.loads(state["config"]))
        if steps is not None:
            config = replace(config, steps=steps)
        trainer = cls(config, planes, device=device, data_description=data_description)
        trainer.generator.load_state_dict(state["generator"])
        trainer.discriminator.load_state_dict(state["discriminator"])
        trainer.opt_g.load_state_dict(state["opt_g"])
        trainer.opt_d.load_state_dict(state["opt_d"])
        trainer.step = int(state["step"])
        return trainer


def export_generator(
    generator: nn.Module,
    path: str | Path,
    *,
    config: TrainConfig,
    data: Iterable[str] = (),
    data_description: str = "",
    metrics: dict[str, Any] | None = None,
    preset: str | None = None,
    force: bool = False,
) -> str:
    """Write ``path`` (safetensors weights) and ``path.with_suffix('.json')`` (config with their SHA-256).

    Returns the SHA-256 of the weights file.
    """
    from safetensors.torch import save as save_safetensors

    from deepkedi._version import __version__

    path = Path(path)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in generator.state_dict().items()}
    blob = save_safetensors(state, metadata={"format": "deepkedi zz-gan generator 1"})
    digest = hashlib.sha256(blob).hexdigest()
    document = {
        "format": "deepkedi zz-gan generator 1",
        "sha256": digest,
        "package_version": __version__,
        "torch_version": torch.__version__,
        "architecture": {"generator": config.generator.to_dict(), "discriminator": config.discriminator.to_dict()},
        "recipe": {**config.to_dict(), "preset": preset},
        "data": {"description": data_description, "planes": list(data)},
        "metrics": metrics or {},
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    with atomic_output(path, force=force) as fh:
        fh.write(blob)
    with atomic_output(path.with_suffix(".json"), force=force) as fh:
        fh.write((json.dumps(document, indent=2) + "\n").encode("utf-8"))
    return digest


def evaluate_generator(
    generator: nn.Module, *, keys: int = 8, size: int = 256, seed: int = 0, image: np.ndarray | None = None
) -> dict[str, float]:
    """Key-image statistics of a generator at ``size``², 8-bit keys (the paper's measures).

    Keys come from seeds ``seed .. seed + keys - 1`` on ``image`` (default: a
    brain MR phantom). Returns the mean global entropy, the fraction of keys whose
    histogram χ² is below its α = 0.05 critical value, the largest |adjacent
    correlation| over keys and directions, the mean NPCR and UACI between keys of
    consecutive seeds, the mean fraction of pixels that change when the
    seed's lowest bit flips, and the fraction that change when the same seed is
    used on another initial image (a lung CT phantom): how much the image matters.
    """
    from deepkedi import metrics
    from deepkedi.datasets import phantom
    from deepkedi.keygen.generate import LoadedGenerator, generate_key_image

    if image is None:
        image = phantom("brain", "MR", seed=0, shape=(size, size)).pixels
    loaded = LoadedGenerator(module=generator.eval(), config={}, sha256="")
    words = [generate_key_image(image, seed=seed + i, bits=8, generator=loaded).pixels for i in range(keys)]
    flipped = [generate_key_image(image, seed=(seed + i) ^ 1, bits=8, generator=loaded).pixels for i in range(keys)]
    other = phantom("lung", "CT", seed=0, shape=np.shape(image)[-2:]).pixels
    other_keys = [generate_key_image(other, seed=seed + i, bits=8, generator=loaded).pixels for i in range(keys)]
    generator.train()
    entropy = [metrics.shannon_entropy(k, bits=8).value for k in words]
    chi = [metrics.histogram_chi_square(k, bits=8).passed for k in words]
    corr = [abs(r.coefficient) for k in words for r in metrics.adjacent_correlations(k).values()]
    pairs = list(itertools.pairwise(words))
    npcr = [metrics.npcr(a, b, bits=8).value for a, b in pairs]
    uaci = [metrics.uaci(a, b, bits=8).value for a, b in pairs]
    return {
        "keys": keys,
        "size": size,
        "entropy_mean": float(np.mean(entropy)),
        "chi_square_pass_fraction": float(np.mean(chi)),
        "max_abs_adjacent_correlation": float(np.max(corr)),
        "npcr_mean": float(np.mean(npcr)) if npcr else math.nan,
        "uaci_mean": float(np.mean(uaci)) if uaci else math.nan,
        "seed_bit_flip_changed_fraction": float(
            np.mean([np.mean(a != b) for a, b in zip(words, flipped, strict=True)])
        ),
        "other_image_changed_fraction": float(
            np.mean([np.mean(a != b) for a, b in zip(words, other_keys, strict=True)])
        ),
    }
