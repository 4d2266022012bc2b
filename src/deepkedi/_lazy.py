"""Package namespaces that import their submodules on first use (PEP 562).

``import deepkedi.imaging`` then costs only what is asked for: the command line
starts without loading NumPy, SciPy, Pillow or pydicom until a command needs them,
while ``from deepkedi.imaging import read_image`` works as before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public ``name`` lives in ``exports[name]``.

    ``exports`` maps each name to the module that defines it, relative to ``package``
    (``"image"`` for ``package.image``). The first lookup imports that module and
    caches the value in the package's namespace.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
