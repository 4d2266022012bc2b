"""ZZ-GAN inference: key images from a trained generator, an initial image and a seed.

A key is a pure function of three things: the generator weights, the *initial
image* (a medical image that conditions the key, seed paper Sec. 3) and a *seed*
that draws the latent noise map. The seed carries the key's secrecy: the
network is public and the initial image may be, so a key holds at most as much
entropy as its seed (128 bits when drawn by :func:`generate_key_image`).

Shipped weights (``weights/zzgan.safetensors`` with ``weights/zzgan.json``) are
part of the package and checked against the SHA-256 recorded in their JSON
config before use; nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from deepkedi.errors import FormatError
from deepkedi.imaging import MedicalImage
from deepkedi.inputs import check_regular_input
from deepkedi.keygen import require_gan

__all__ = [
    "MAX_SEED",
    "SHIPPED_CONFIG",
    "SHIPPED_WEIGHTS",
    "GeneratedKey",
    "LoadedGenerator",
    "generate_key_image",
    "initial_image",
    "key_words",
    "latent_noise",
    "load_generator",
]

#: Seeds are integers in [0, 2**128).
MAX_SEED: Final = 2**128
SHIPPED_WEIGHTS: Final = "zzgan.safetensors"
SHIPPED_CONFIG: Final = "zzgan.json"
_LATENT_LABEL: Final = b"deepkedi/v1 zz-gan latent"


def latent_noise(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The latent noise map of ``seed``: ``(C, H, W)`` float32 uniforms in (-1, 1).

    ChaCha20 (pyca/cryptography) under ``SHA-256(label || seed as 16 bytes,
    big-endian)`` with a zero nonce encrypts zeros; each little-endian 16-bit
    word ``k`` gives ``(k + 1/2) / 2^15 - 1``. The map is the same on every
    platform and version, and seeds that differ in one bit give unrelated maps.

    Examples
    --------
    >>> z = latent_noise(1, (2, 3, 4))
    >>> z.shape, z.dtype, bool(np.abs(z).max() < 1)
    ((2, 3, 4), dtype('float32'), True)
    """
    from deepkedi.keystream import chacha20_keystream

    seed = _check_seed(seed)
    key = hashlib.sha256(_LATENT_LABEL + seed.to_bytes(16, "big")).digest()
    words = np.frombuffer(chacha20_keystream(key, 2 * int(np.prod(shape))), dtype="<u2")
    z = words.astype(np.float32)
    # (k + 1/2) 2^-15 - 1 in two in-place passes; every step is exact in float32 (k < 2^16).
    z *= np.float32(2.0**-15)
    z += np.float32(2.0**-16 - 1.0)
    return z.reshape(shape)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**128), got {seed}")
    return seed


def initial_image(image: Any) -> np.ndarray:
    """The plane that conditions a key: ``(H, W)`` float32 min–max scaled to [0, 1].

    A stack uses its middle plane and colour its mean sample; a constant image
    gives zeros.
    """
    if isinstance(image, MedicalImage):
        plane = np.asarray(image.pixels)
        if image.channels_last:
            plane = plane.mean(axis=-1)
    else:
        plane = np.asarray(image)
    if plane.dtype.kind not in "biuf" or plane.ndim < 2 or plane.size == 0:
        raise ValueError(f"initial image must be a non-empty real array of 2 or more dimensions, got {plane.shape}")
    while plane.ndim > 2:
        plane = plane[plane.shape[0] // 2]
    plane = plane.astype(np.float64)
    lo, hi = float(plane.min()), float(plane.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("initial image holds NaN or infinite values")
    scaled = (plane - lo) / (hi - lo) if hi > lo else np.zeros_like(plane)
    return scaled.astype(np.float32)


@dataclass(frozen=True)
class LoadedGenerator:
    """A generator ready for inference, with the config and weight hash it was loaded from."""

    module: Any
    config: dict[str, Any]
    sha256: str


def _weights_dir() -> Path:
    return Path(str(resources.files("deepkedi.keygen") / "weights"))


def load_generator(weights: str | Path | None = None) -> LoadedGenerator:
    """Load generator weights (default: the shipped ones), verifying their SHA-256.

    Parameters
    ----------
    weights
        A ``.safetensors`` file with a ``.json`` config beside it (same stem), as
        :func:`deepkedi.keygen.train.export_generator` writes.

    Raises
    ------
    FormatError
        If the config is missing or malformed, or the weights do not match its hash.
    MissingExtraError
        If PyTorch or safetensors is not installed (the ``gan`` extra).
    """
    path = Path(weights) if weights is not None else _weights_dir() / SHIPPED_WEIGHTS
    return _load_generator(str(path.resolve()))


@functools.lru_cache(maxsize=4)
def _load_generator(path_text: str) -> LoadedGenerator:
    require_gan()
    from safetensors.torch import load as load_safetensors

    from deepkedi.keygen.models import build_generator

    path = Path(path_text)
    config_path = path.with_suffix(".json")
    try:
        blob = check_regular_input(path, error=FormatError).read_bytes()
        config = json.loads(check_regular_input(config_path, error=FormatError).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FormatError(f"generator weights: {error.filename} is missing") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"{config_path.name}: not a generator config ({error})") from error
    digest = hashlib.sha256(blob).hexdigest()
    if not isinstance(config, dict) or config.get("sha256") != digest:
        raise FormatError(f"{path.name}: SHA-256 {digest} does not match the one in {config_path.name}")
    try:
        module = build_generator(config["architecture"]["generator"])
        module.load_state_dict(load_safetensors(blob))
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise FormatError(
            f"{path.name}: weights do not fit the architecture in {config_path.name} ({error})"
        ) from error
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return LoadedGenerator(module=module, config=config, sha256=digest)


def key_words(logits: Any, bits: int) -> np.ndarray:
    """Hard key words ``sum_b [logit_b > 0] 2^b`` of the first ``bits`` planes of ``(bits', H, W)`` logits.

    Returns ``uint8`` (8 bits) or ``uint16`` (16 bits) of shape ``(H, W)``. Plane 0 is
    the least significant bit.

    Examples
    --------
    >>> logits = -np.ones((16, 1, 2), np.float32)
    >>> logits[0, 0, 1] = logits[9, 0, 1] = 1.0
    >>> key_words(logits, 16).tolist()
    [[0, 513]]
    """
    planes = np.asarray(logits)
    if planes.ndim != 3 or bits not in (8, 16):
        raise ValueError(f"need (planes, H, W) logits and 8 or 16 bits, got shape {planes.shape} and {bits} bits")
    if bits > planes.shape[0]:
        raise ValueError(f"the generator emits {planes.shape[0]} bit planes, {bits} requested")
    packed = np.packbits(planes[:bits] > 0, axis=0, bitorder="little")  # (bits / 8, H, W): byte k = planes 8k..8k+7
    if bits == 8:
        return packed[0]
    return packed[0].astype(np.uint16) | (packed[1].astype(np.uint16) << 8)


@dataclass(frozen=True)
class GeneratedKey:
    """A ZZ-GAN key image and how it was made (the seed is as secret as the key)."""

    pixels: np.ndarray
    seed: int
    model_sha256: str
    bits: int


def generate_key_image(
    image: Any,
    *,
    seed: int | None = None,
    bits: int | None = None,
    generator: LoadedGenerator | None = None,
) -> GeneratedKey:
    """A key image of ``image``'s height and width (seed paper Sec. 3, Fig. 3).

    Parameters
    ----------
    image
        The initial image: an array or :class:`~deepkedi.imaging.MedicalImage`
        (see :func:`initial_image`).
    seed
        Draws the latent noise; default 128 bits from :mod:`secrets`.
    bits
        8 or 16; default 8 for 8-bit (and boolean) images, 16 otherwise.
    generator
        Default: the shipped generator.

    Returns
    -------
    GeneratedKey
        ``pixels`` ``uint8`` or ``uint16`` of shape ``(H, W)``.

    Examples
    --------
    >>> key = generate_key_image(np.zeros((32, 48), np.uint8), seed=7)  # doctest: +SKIP
    >>> key.pixels.shape, key.pixels.dtype  # doctest: +SKIP
    ((32, 48), dtype('uint8'))
    """
    require_gan()
    import torch

    pixels = image.pixels if isinstance(image, MedicalImage) else np.asarray(image)
    if bits is None:
        bits = 8 if pixels.dtype.itemsize == 1 else 16
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    seed = secrets.randbits(128) if seed is None else _check_seed(seed)
    generator = generator or load_generator()
    plane = initial_image(image)
    channels = generator.module.config.latent_channels
    z = latent_noise(seed, (channels, *plane.shape))
    with torch.inference_mode():
        logits = generator.module(torch.from_numpy(plane)[None, None], torch.from_numpy(z)[None])[0].numpy()
    return GeneratedKey(pixels=key_words(logits, bits), seed=seed, model_sha256=generator.sha256, bits=bits)
