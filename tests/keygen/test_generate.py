"""ZZ-GAN inference: latent noise, key images, shipped weights and their hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from deepkedi.datasets import phantom
from deepkedi.errors import FormatError
from deepkedi.keygen.generate import (
    generate_key_image,
    initial_image,
    latent_noise,
    load_generator,
)


def test_latent_noise_is_a_deterministic_uniform_map() -> None:
    z = latent_noise(12345, (4, 64, 64))
    assert z.dtype == np.float32 and z.shape == (4, 64, 64)
    assert np.array_equal(z, latent_noise(12345, (4, 64, 64)))
    assert z.min() > -1 and z.max() < 1
    assert abs(float(z.mean())) < 0.02 and abs(float(z.var()) - 1 / 3) < 0.01


def test_latent_noise_known_answers() -> None:
    # Pinned: ChaCha20 under SHA-256(label || seed, 16 bytes big-endian), 16-bit words (k + 1/2) / 2^15 - 1.
    # A change here changes every key a seed made; it must be a new format version, not an accident.
    assert latent_noise(0, (1, 1, 4)).ravel().tolist() == [
        -0.2970733642578125,
        -0.8682403564453125,
        -0.5338592529296875,
        0.6762542724609375,
    ]
    assert latent_noise(2**127 + 5, (1, 1, 2)).ravel().tolist() == [0.3161468505859375, -0.5801239013671875]


def test_latent_noise_of_seeds_one_bit_apart_is_unrelated() -> None:
    a, b = latent_noise(2**100, (1, 128, 128)), latent_noise(2**100 ^ 1, (1, 128, 128))
    assert np.mean(a != b) > 0.999
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.02


@pytest.mark.parametrize("seed", [-1, 2**128, 1.5, True, "7"])
def test_latent_noise_rejects_bad_seeds(seed: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        latent_noise(seed, (1, 2, 2))  # type: ignore[arg-type]


def test_initial_image_scales_to_unit_range_and_picks_a_plane() -> None:
    stack = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    plane = initial_image(stack)
    assert plane.shape == (4, 5) and plane.dtype == np.float32
    assert plane.min() == 0 and plane.max() == 1
    assert not initial_image(np.full((3, 3), 7)).any()
    with pytest.raises(ValueError):
        initial_image(np.zeros(5))
    with pytest.raises(ValueError):
        initial_image(np.array([[np.nan, 1.0]]))


def test_shipped_generator_loads_and_is_verified() -> None:
    loaded = load_generator()
    assert len(loaded.sha256) == 64
    assert loaded.config["sha256"] == loaded.sha256
    assert loaded.config["recipe"]["preset"] == "shipped"
    assert loaded.config["package_version"]


def test_same_model_seed_and_image_give_the_identical_key() -> None:
    image = phantom("lung", "CT", seed=3, shape=(96, 80))
    first = generate_key_image(image, seed=987654321)
    second = generate_key_image(image, seed=987654321)
    assert np.array_equal(first.pixels, second.pixels)
    assert first.pixels.shape == (96, 80)
    assert first.pixels.dtype == np.uint16 and first.bits == 16  # a 16-bit CT gets a 16-bit key
    assert first.seed == 987654321


def test_key_bit_depth_follows_the_image_or_the_caller() -> None:
    assert generate_key_image(np.zeros((20, 30), np.uint8), seed=1).pixels.dtype == np.uint8
    assert generate_key_image(np.zeros((20, 30), np.uint8), seed=1, bits=16).pixels.dtype == np.uint16
    with pytest.raises(ValueError):
        generate_key_image(np.zeros((20, 30), np.uint8), seed=1, bits=12)


def test_one_bit_of_seed_changes_almost_every_pixel() -> None:
    image = phantom("brain", "MR", seed=0, shape=(128, 128)).pixels
    a = generate_key_image(image, seed=2**64 + 10, bits=8).pixels
    b = generate_key_image(image, seed=2**64 + 11, bits=8).pixels
    assert np.mean(a != b) >= 0.99  # independent keys differ in 255/256 = 99.6 % of pixels


def test_a_random_seed_is_drawn_when_none_is_given() -> None:
    image = np.zeros((16, 16), np.uint8)
    a, b = generate_key_image(image), generate_key_image(image)
    assert a.seed != b.seed and not np.array_equal(a.pixels, b.pixels)


def test_exported_weights_load_and_tampering_is_refused(tiny_weights: Path, tmp_path: Path) -> None:
    loaded = load_generator(tiny_weights)
    key = generate_key_image(np.zeros((24, 24), np.uint8), seed=5, generator=loaded)
    assert key.model_sha256 == loaded.sha256 and key.pixels.shape == (24, 24)

    copy = tmp_path / "copy.safetensors"
    shutil.copy(tiny_weights, copy)
    shutil.copy(tiny_weights.with_suffix(".json"), copy.with_suffix(".json"))
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="does not match"):
        load_generator(copy)

    missing = tmp_path / "alone.safetensors"
    shutil.copy(tiny_weights, missing)
    with pytest.raises(FormatError, match="missing"):
        load_generator(missing)

    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_weights, other)
    config = json.loads(tiny_weights.with_suffix(".json").read_text())
    config["architecture"]["generator"]["base_channels"] = 8
    other.with_suffix(".json").write_text(json.dumps(config))
    with pytest.raises(FormatError, match="do not fit"):
        load_generator(other)


def test_fifo_weights_are_refused_at_once(fifo: Path) -> None:
    with pytest.raises(FormatError, match="FIFO"):
        load_generator(fifo)
