"""ZZ-GAN: the learned key generator of Deep-KEDI (needs the ``gan`` extra: PyTorch, safetensors).

- :mod:`deepkedi.keygen.models` -- the generator and discriminator modules;
- :mod:`deepkedi.keygen.train` -- training, checkpoints, export of weights;
- :mod:`deepkedi.keygen.generate` -- key images from the shipped (or any) weights.

Importing this package does not import PyTorch; the submodules do.
"""

from __future__ import annotations

__all__ = ["torch_available"]


def torch_available() -> bool:
    """Whether PyTorch and safetensors import (the ``deepkedi[gan]`` extra is installed)."""
    try:
        import safetensors  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
