"""ZZ-GAN modules: the key-image generator and the cipher-image discriminator.

Only ``nn.Module`` classes and their builders live here (training is
:mod:`deepkedi.keygen.train`, inference :mod:`deepkedi.keygen.generate`), as
torchvision keeps ``models/`` apart from its training references.

The seed paper (Sec. 3, Fig. 3) gives no layer table for its generator. The
closest published design is DeepKeyGen's CycleGAN-style ResNet generator [1]_:
a wide convolution, strided convolutions down, residual blocks, transposed
convolutions up [2]_. :class:`KeyGenerator` follows it with two changes a *key*
generator needs:

- **Noise injection.** A key must depend on a secret seed, not only on the
  public initial image, so a per-pixel latent noise map ``z`` (drawn from the
  seed, :func:`deepkedi.keygen.generate.latent_noise`) is concatenated with the
  decoder's full-resolution features before the output layer, as StyleGAN
  injects per-pixel noise [3]_. The output layer is a 1×1 convolution, so
  neighbouring key pixels do not share noise values.
- **Bit-plane head.** The output is ``bits`` logits per pixel, one per bit
  plane; the key word is ``sum_b [logit_b > 0] 2^b``
  (:func:`deepkedi.keygen.generate.key_words`). Training uses the soft
  bits ``sigmoid(logit_b)``, which make the paper's XOR differentiable (see
  :func:`soft_xor`).

:class:`CipherDiscriminator` is a PatchGAN [4]_: it scores overlapping patches of
a cipher image as real (a sample of the target domain) or generated.

References
----------
.. [1] Y. Ding, F. Tan, Z. Qin, M. Cao, K.-K. R. Choo and Z. Qin, "DeepKeyGen: a
   deep learning-based stream cipher generator for medical image encryption and
   decryption", *IEEE Trans. Neural Netw. Learn. Syst.* 33(9), 4915-4929 (2022).
   :doi:`10.1109/TNNLS.2021.3062754`
.. [2] J.-Y. Zhu, T. Park, P. Isola and A. A. Efros, "Unpaired image-to-image
   translation using cycle-consistent adversarial networks", ICCV 2017.
   :doi:`10.1109/ICCV.2017.244`
.. [3] T. Karras, S. Laine and T. Aila, "A style-based generator architecture for
   generative adversarial networks", CVPR 2019. :doi:`10.1109/CVPR.2019.00453`
.. [4] P. Isola, J.-Y. Zhu, T. Zhou and A. A. Efros, "Image-to-image translation
   with conditional adversarial networks", CVPR 2017. :doi:`10.1109/CVPR.2017.632`
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CipherDiscriminator",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "KeyGenerator",
    "build_discriminator",
    "build_generator",
    "soft_xor",
]

#: The generator halves the size this many times, so inputs are padded to a multiple of 2**DOWNSAMPLINGS.
DOWNSAMPLINGS = 2
#: Initial weight from latent channel ``b`` to bit plane ``b`` (see ``KeyGenerator._init_head``).
LATENT_GAIN = 4.0
#: Initial scale of the head's feature weights relative to PyTorch's default initialisation.
FEATURE_SCALE = 0.1


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`KeyGenerator` (stored beside the weights).

    Parameters
    ----------
    base_channels
        Channels of the first convolution (CycleGAN's ``ngf``); doubled by each
        strided convolution.
    residual_blocks
        Residual blocks at the lowest resolution.
    latent_channels
        Channels of the per-pixel latent noise map.
    bits
        Bit planes the head emits: the widest key it can make (8 or 16).
    latent_head_init
        Start each bit plane as the sign of its own latent channel
        (``KeyGenerator._init_head``); False keeps PyTorch's default
        initialisation (the ablation's comparison).
    """

    base_channels: int = 8
    residual_blocks: int = 2
    latent_channels: int = 16
    bits: int = 16
    latent_head_init: bool = True

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.residual_blocks < 0 or self.latent_channels < 1:
            raise ValueError(f"invalid generator configuration {self}")
        if self.bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {self.bits}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of :class:`CipherDiscriminator`: ``base_channels`` (``ndf``) and strided ``layers``."""

    base_channels: int = 16
    layers: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with one (``Conv2d`` types it as optional)."""
    if conv.bias is None:
        raise ValueError(f"{conv} has no bias")
    return conv.bias


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReplicationPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.ReplicationPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class KeyGenerator(nn.Module):
    """Initial image + latent noise → bit-plane logits of the key image (same height and width).

    ``forward(image, latent)`` takes ``image`` ``(N, 1, H, W)`` in [0, 1] and
    ``latent`` ``(N, latent_channels, H, W)`` and returns logits ``(N, bits, H,
    W)``. Any ``H, W`` works: the input is padded (replicate) to a multiple of 4
    and the output cropped back.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        layers: list[nn.Module] = [
            nn.ReplicationPad2d(2),
            nn.Conv2d(1, c, 5),
            nn.InstanceNorm2d(c, affine=True),
            nn.ReLU(inplace=True),
        ]
        for i in range(DOWNSAMPLINGS):
            layers += [
                nn.Conv2d(c * 2**i, c * 2 ** (i + 1), 3, stride=2, padding=1),
                nn.InstanceNorm2d(c * 2 ** (i + 1), affine=True),
                nn.ReLU(inplace=True),
            ]
        layers += [_ResidualBlock(c * 2**DOWNSAMPLINGS) for _ in range(config.residual_blocks)]
        for i in range(DOWNSAMPLINGS, 0, -1):
            layers += [
                nn.ConvTranspose2d(c * 2**i, c * 2 ** (i - 1), 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(c * 2 ** (i - 1), affine=True),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        # 1x1: each key pixel sees its own latent values only (no spatial sharing of noise).
        self.head = nn.Conv2d(c + config.latent_channels, config.bits, 1)
        if config.latent_head_init:
            self._init_head(c)

    def _init_head(self, feature_channels: int) -> None:
        """Start every bit plane as the sign of its own latent channel, the image as a small perturbation.

        Plane ``b`` begins as ``LATENT_GAIN * z_b`` plus ``FEATURE_SCALE`` times the
        default initialisation of the feature weights, bias 0: keys start uniform,
        independent across planes, pixels and seeds (``z`` is), and training decides
        how much the initial image bends them. Planes beyond ``latent_channels``
        start from the default initialisation.
        """
        with torch.no_grad():
            self.head.weight[:, :feature_channels] *= FEATURE_SCALE
            self.head.weight[:, feature_channels:] = 0.0
            for b in range(min(self.config.bits, self.config.latent_channels)):
                self.head.weight[b, feature_channels + b] = LATENT_GAIN
            _bias(self.head).zero_()

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 1:
            raise ValueError(f"image must be (N, 1, H, W), got {tuple(image.shape)}")
        n, _, h, w = image.shape
        if latent.shape != (n, self.config.latent_channels, h, w):
            raise ValueError(
                f"latent must be (N, {self.config.latent_channels}, H, W) = {(n, self.config.latent_channels, h, w)}, "
                f"got {tuple(latent.shape)}"
            )
        step = 2**DOWNSAMPLINGS
        ph, pw = (-h) % step, (-w) % step
        x = F.pad(image, (0, pw, 0, ph), mode="replicate") if ph or pw else image
        features = self.features(x)[..., :h, :w]
        # The 1x1 head as two matrix products (features, latent) instead of a convolution over their
        # concatenation: the same arithmetic, about 8x faster on CPU for these few channels.
        weight = self.head.weight[:, :, 0, 0]
        c = features.shape[1]
        logits = torch.einsum("oc,nchw->nohw", weight[:, :c], features)
        logits = logits + torch.einsum("oc,nchw->nohw", weight[:, c:], latent)
        return logits + _bias(self.head).view(1, -1, 1, 1)


class CipherDiscriminator(nn.Module):
    """PatchGAN over cipher images ``(N, 1, H, W)`` in [0, 1]: a map of real/generated scores (LSGAN, no sigmoid)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.base_channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        channels = c
        for _ in range(1, config.layers):
            layers += [
                nn.Conv2d(channels, channels * 2, 4, stride=2, padding=1),
                nn.InstanceNorm2d(channels * 2, affine=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, cipher: torch.Tensor) -> torch.Tensor:
        return self.body(cipher)


def build_generator(config: GeneratorConfig | dict[str, Any] | None = None) -> KeyGenerator:
    """A :class:`KeyGenerator` from a config (or its dict); default :class:`GeneratorConfig`."""
    if isinstance(config, dict):
        config = GeneratorConfig(**config)
    return KeyGenerator(config or GeneratorConfig())


def build_discriminator(config: DiscriminatorConfig | dict[str, Any] | None = None) -> CipherDiscriminator:
    """A :class:`CipherDiscriminator` from a config (or its dict); default :class:`DiscriminatorConfig`."""
    if isinstance(config, dict):
        config = DiscriminatorConfig(**config)
    return CipherDiscriminator(config or DiscriminatorConfig())


def soft_xor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Differentiable XOR of bits (or bit probabilities): ``a + b - 2ab``.

    Exact for ``a, b`` in {0, 1}; for independent probabilities it is the
    probability that the XOR is 1. The seed paper's cipher is a bitwise XOR of
    the scanned image with the key (Sec. 3, "zigzag cipher"); this is the
    surrogate its gradient flows through during training.
    """
    return a + b - 2 * a * b
