"""ZZ-GAN: the learned key generator of Deep-KEDI (needs the ``gan`` extra: PyTorch, safetensors).

- :mod:`deepkedi.keygen.models` -- the generator and discriminator modules;
- :mod:`deepkedi.keygen.train` -- training, checkpoints, export of weights;
- :mod:`deepkedi.keygen.generate` -- key images from the shipped (or any) weights.

Importing this package does not import PyTorch; the submodules do.
"""

from __future__ import annotations

from deepkedi.errors import require_extra

__all__ = ["require_gan", "torch_available"]


def require_gan(feature: str = "the ZZ-GAN") -> None:
    """Import PyTorch and safetensors, or raise :class:`~deepkedi.errors.MissingExtraError` naming the ``gan`` extra.

    ``feature`` starts the message: ``"kedi train"`` gives
    ``kedi train needs PyTorch: pip install 'deepkedi[gan]'``.
    """
    require_extra("torch", "gan", feature=feature)
    require_extra("safetensors", "gan", feature=feature)


def torch_available() -> bool:
    """Whether PyTorch and safetensors import (the ``deepkedi[gan]`` extra is installed)."""
    try:
        require_gan()
    except ImportError:
        return False
    return True
