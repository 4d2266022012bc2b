"""ZZ-GAN training: loss terms, reproducibility, checkpoints, export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepkedi.datasets import phantom  # noqa: E402
from deepkedi.errors import FormatError  # noqa: E402
from deepkedi.keygen.train import (  # noqa: E402
    LOSS_TERMS,
    PRESETS,
    TrainConfig,
    Trainer,
    evaluate_generator,
    folder_training_planes,
    generator_losses,
)

PLANES = [
    ("brain MR", phantom("brain", "MR", seed=0, shape=(40, 40)).pixels / 4096.0),
    ("small", np.linspace(0, 1, 12 * 9, dtype=np.float32).reshape(12, 9)),  # smaller than the crop: mirrored
]


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.generator.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _bits(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).integers(0, 2, (n, *shape)), dtype=torch.float32)


def test_loss_terms_reward_what_they_should() -> None:
    plain = _bits(2, (8, 32, 32), 0)
    random_a, random_b = _bits(2, (16, 32, 32), 1), _bits(2, (16, 32, 32), 2)
    good, _ = generator_losses(random_a, random_b, plain, None)
    assert set(good) == set(LOSS_TERMS)
    assert good["reconstruction"] == 0  # hard bits: XOR decrypts exactly
    assert good["adversarial"] == 0  # no discriminator given
    # Random bytes: 256 * sum_v Var(h_v) = 256 / pixels in expectation (sampling noise of the histogram).
    assert good["uniformity"] < 2 * 256 / (32 * 32)
    assert good["decorrelation"] < 0.01 and good["diversity"] < 0.01

    constant = torch.zeros_like(random_a)
    bad, _ = generator_losses(constant, constant, plain, None)
    assert bad["uniformity"] > 100 * good["uniformity"]
    assert bad["diversity"] == pytest.approx(1.0)  # identical keys agree on every bit
    smooth = torch.cumsum(torch.ones(2, 16, 32, 32), dim=3) / 32 > 0.5
    smooth_loss, _ = generator_losses(smooth.float(), random_b, plain, None)
    assert smooth_loss["decorrelation"] > 0.2  # averaged with the random key of the other seed
    undecided = torch.full_like(random_a, 0.5)
    soft_loss, _ = generator_losses(undecided, undecided, plain, None)
    assert soft_loss["reconstruction"] > 0.1


def test_tiny_training_runs_with_finite_losses() -> None:
    trainer = Trainer(PRESETS["tiny"], PLANES, device="cpu")
    reports = trainer.run()
    assert [r.step for r in reports] == [1, 2, 3]
    for report in reports:
        assert all(np.isfinite(v) for v in report.generator.values()) and np.isfinite(report.discriminator)


def test_training_is_reproducible() -> None:
    a = Trainer(PRESETS["tiny"], PLANES, device="cpu")
    a.run()
    b = Trainer(PRESETS["tiny"], PLANES, device="cpu")
    b.run()
    assert _same(_state(a), _state(b))
    c = Trainer(replace(PRESETS["tiny"], seed=1), PLANES, device="cpu")
    c.run()
    assert not _same(_state(a), _state(c))


def test_resume_continues_exactly(tmp_path: Path) -> None:
    config = replace(PRESETS["tiny"], steps=4)
    straight = Trainer(config, PLANES, device="cpu")
    straight.run()
    half = Trainer(replace(config, steps=2), PLANES, device="cpu")
    half.run(checkpoint=tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", PLANES, device="cpu", steps=4)
    assert resumed.step == 2
    resumed.run()
    assert _same(_state(straight), _state(resumed))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FormatError, match="not a readable ZZ-GAN checkpoint"):
        Trainer.resume(tmp_path / "junk.pt", PLANES)
    # A damaged archive: torch's unpickler raised UnpicklingError, a traceback through the CLI.
    damaged = bytearray((tmp_path / "ck.pt").read_bytes())
    for offset in range(1000, 1400, 4):
        damaged[offset : offset + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "damaged.pt").write_bytes(bytes(damaged))
    with pytest.raises(FormatError):
        Trainer.resume(tmp_path / "damaged.pt", PLANES)


def test_config_validation_and_round_trip() -> None:
    config = PRESETS["shipped"]
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(weights={"beauty": 1.0})
    with pytest.raises(ValueError):
        TrainConfig(weights={"uniformity": -1.0})
    with pytest.raises(ValueError):
        TrainConfig(crop=4)


def test_folder_planes(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(64, dtype=np.uint16).reshape(8, 8))
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "b.npy", np.ones((5, 6), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    planes, skipped = folder_training_planes(tmp_path)
    assert [name for name, _ in planes] == ["a.npy", "sub/b.npy"]
    assert skipped == ["notes.txt"]
    assert planes[0][1].max() == 1.0
    with pytest.raises(ValueError):
        folder_training_planes(tmp_path / "sub" / "b.npy")


def test_evaluation_of_the_untrained_generator_reports_every_measure() -> None:
    trainer = Trainer(PRESETS["tiny"], PLANES, device="cpu")
    result = evaluate_generator(trainer.generator, keys=2, size=64)
    assert set(result) >= {
        "entropy_mean",
        "chi_square_pass_fraction",
        "max_abs_adjacent_correlation",
        "npcr_mean",
        "uaci_mean",
        "seed_bit_flip_changed_fraction",
        "other_image_changed_fraction",
    }
    assert 7.0 < result["entropy_mean"] <= 8.0


def test_fifo_checkpoint_is_refused_at_once(fifo: Path) -> None:
    from deepkedi.errors import FormatError

    with pytest.raises(FormatError, match="FIFO"):
        Trainer.resume(fifo)
