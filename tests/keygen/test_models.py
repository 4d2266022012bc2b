"""ZZ-GAN modules: shapes, the bit-plane head, the XOR surrogate."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepkedi.keygen.generate import key_words  # noqa: E402
from deepkedi.keygen.models import (  # noqa: E402
    LATENT_GAIN,
    DiscriminatorConfig,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    soft_xor,
)


@pytest.mark.parametrize("shape", [(16, 16), (17, 23), (5, 64), (1, 9)])
def test_generator_keeps_any_height_and_width(shape: tuple[int, int]) -> None:
    generator = build_generator(GeneratorConfig(base_channels=4, residual_blocks=1))
    image = torch.rand(2, 1, *shape)
    latent = torch.rand(2, 16, *shape) * 2 - 1
    logits = generator(image, latent)
    assert logits.shape == (2, 16, *shape)
    assert torch.isfinite(logits).all()


def test_generator_checks_its_inputs() -> None:
    generator = build_generator(GeneratorConfig(base_channels=4, residual_blocks=0))
    with pytest.raises(ValueError, match="image must be"):
        generator(torch.rand(1, 3, 8, 8), torch.rand(1, 16, 8, 8))
    with pytest.raises(ValueError, match="latent must be"):
        generator(torch.rand(1, 1, 8, 8), torch.rand(1, 8, 8, 8))
    with pytest.raises(ValueError):
        GeneratorConfig(bits=12)
    with pytest.raises(ValueError):
        GeneratorConfig(base_channels=0)


def test_head_starts_as_the_sign_of_its_own_latent_channel() -> None:
    config = GeneratorConfig(base_channels=4, residual_blocks=1)
    generator = build_generator(config)
    weight = generator.head.weight[:, :, 0, 0]
    latent_part = weight[:, config.base_channels :]
    assert torch.equal(latent_part, torch.eye(16) * LATENT_GAIN)
    assert weight[:, : config.base_channels].abs().max() < 0.1
    assert torch.equal(generator.head.bias, torch.zeros(16))


def test_untrained_keys_follow_the_latent_signs_almost_everywhere() -> None:
    torch.manual_seed(0)
    generator = build_generator(GeneratorConfig(base_channels=4, residual_blocks=1)).eval()
    latent = torch.rand(1, 16, 64, 64) * 2 - 1
    with torch.no_grad():
        logits = generator(torch.rand(1, 1, 64, 64), latent)
    agree = ((logits > 0) == (latent > 0)).float().mean()
    assert agree > 0.95  # only latent values within the small feature bias of 0 can flip


def test_key_words_assemble_bit_planes_least_significant_first() -> None:
    logits = torch.full((16, 1, 3), -1.0).numpy()
    logits[0, 0, 1] = 1.0  # word 1
    logits[7, 0, 2] = 1.0  # word 128
    logits[15, 0, 2] = 1.0  # word 128 + 32768 in a 16-bit key
    assert key_words(logits, 8).dtype == "uint8" and key_words(logits, 8).tolist() == [[0, 1, 128]]
    assert key_words(logits, 16).dtype == "uint16" and key_words(logits, 16).tolist() == [[0, 1, 128 + 32768]]
    every = (((np.arange(65536)[None, :] >> np.arange(16)[:, None]) & 1) * 2.0 - 1.0).reshape(16, 256, 256)
    assert np.array_equal(key_words(every, 16).ravel(), np.arange(65536))
    with pytest.raises(ValueError):
        key_words(logits[:8], 16)


def test_soft_xor_is_xor_on_bits_and_differentiable() -> None:
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])
    b = torch.tensor([0.0, 1.0, 0.0, 1.0], requires_grad=True)
    assert soft_xor(a, b).tolist() == [0.0, 1.0, 1.0, 0.0]
    soft_xor(a, b).sum().backward()
    assert b.grad.tolist() == [1.0, 1.0, -1.0, -1.0]
    # Independent probabilities: P(a xor b = 1).
    assert soft_xor(torch.tensor(0.3), torch.tensor(0.6)).item() == pytest.approx(0.3 * 0.4 + 0.7 * 0.6)


def test_discriminator_scores_patches() -> None:
    discriminator = build_discriminator(DiscriminatorConfig(base_channels=4, layers=3))
    scores = discriminator(torch.rand(2, 1, 64, 64))
    assert scores.shape == (2, 1, 8, 8)
