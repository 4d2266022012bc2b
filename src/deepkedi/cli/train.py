"""`kedi train`: train the ZZ-GAN key generator and export its weights."""

import enum
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_USAGE,
    MaxDecodedSize,
    console,
    err_console,
    fail,
    guarded,
    printable,
)


class Preset(str, enum.Enum):
    shipped = "shipped"
    tiny = "tiny"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _require_torch() -> None:
    from deepkedi.keygen import require_gan

    with guarded():
        require_gan("kedi train")


@app.command(
    examples=(
        "kedi train --preset tiny -o tiny.safetensors",
        "kedi keygen --suite paper --like CT_small.dcm -o ct-key.png \\\n    --weights tiny.safetensors",
    )
)
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Generator weights to write (.safetensors).")] = Path(
        "zzgan.safetensors"
    ),
    preset: Annotated[Preset, typer.Option(help="Training recipe ('shipped' made the packaged weights).")] = (
        Preset.shipped
    ),
    steps: Annotated[int | None, typer.Option(help="Override the preset's number of steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the preset's seed.")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Folder of training images (default: sample corpus and phantoms).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint file, written every 250 steps and at the end.")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Resume from this checkpoint.")] = None,
    device: Annotated[Device, typer.Option(help="Where to train (auto: CUDA when available).")] = Device.auto,
    force: Annotated[bool, typer.Option("--force", help="Replace existing weights.")] = False,
    max_decoded_size: MaxDecodedSize = None,
) -> None:
    """Train the ZZ-GAN (generator against a cipher-image discriminator) and export safetensors + JSON.

    Seeded and reproducible: the same preset, data, torch build and thread count give
    the same weights (compare the SHA-256 printed at the end).
    """
    _require_torch()
    import torch

    from deepkedi.keygen.train import PRESETS, Trainer, evaluate_generator, export_generator, folder_training_planes

    if output.suffix != ".safetensors":
        fail(f"{output}: weights are written as .safetensors", EXIT_USAGE)
    if (output.exists() or output.with_suffix(".json").exists()) and not force:
        fail(f"{output} (or its .json) exists; use --force to replace it", EXIT_USAGE)
    if device is Device.cuda and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available", EXIT_USAGE)
    target = None if device is Device.auto else device.value
    with guarded():
        planes, description = None, "sample corpus and phantoms"
        if data is not None:
            planes, skipped = folder_training_planes(data)
            description = f"folder {data.name}: {len(planes)} images"
            if skipped:
                description += f", {len(skipped)} unreadable files skipped"
        if resume is not None:
            trainer = Trainer.resume(resume, planes, device=target, steps=steps, data_description=description)
        else:
            config = PRESETS[preset.value]
            if steps is not None:
                config = replace(config, steps=steps)
            if seed is not None:
                config = replace(config, seed=seed)
            trainer = Trainer(config, planes, device=target, data_description=description)
    config = trainer.config
    err_console.print(
        f"training ZZ-GAN ({preset.value} recipe, {config.steps} steps, batch {config.batch_size}, crop {config.crop}) "
        f"on {trainer.device} with {len(trainer.planes)} planes ({description})",
        markup=False,
    )
    columns = (
        TextColumn("[bold]ZZ-GAN"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("train", total=config.steps, completed=trainer.step, losses="")

        def show(report) -> None:  # type: ignore[no-untyped-def]
            g = report.generator
            progress.update(
                task,
                completed=report.step,
                losses=f"adv {g['adversarial']:.3f} rec {g['reconstruction']:.3f} uni {g['uniformity']:.4f} "
                f"dec {g['decorrelation']:.4f} div {g['diversity']:.4f} D {report.discriminator:.3f}",
            )

        with guarded():
            trainer.run(show, checkpoint=checkpoint)
    with guarded():
        metrics = evaluate_generator(trainer.generator)
        digest = export_generator(
            trainer.generator,
            output,
            config=config,
            data=trainer.plane_names,
            data_description=description,
            metrics=metrics,
            preset=preset.value if resume is None else None,
            force=force,
        )
    console.print(
        f"wrote {printable(output)} and {printable(output.with_suffix('.json').name)}; SHA-256 {digest}", markup=False
    )
    console.print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}), markup=False)
