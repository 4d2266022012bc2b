"""Shared fixtures of the ZZ-GAN tests: a tiny generator exported to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of the ``tiny`` preset after its 3 steps, exported with their JSON config."""
    from deepkedi.datasets import phantom
    from deepkedi.keygen.train import PRESETS, Trainer, export_generator

    planes = [("brain MR", phantom("brain", "MR", seed=0, shape=(32, 32)).pixels / 4096.0)]
    trainer = Trainer(PRESETS["tiny"], planes, device="cpu")
    trainer.run()
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    export_generator(trainer.generator, path, config=trainer.config, data=trainer.plane_names, preset="tiny")
    return path
