"""`kedi train`: train the ZZ-GAN key generator and export its weights."""

import enum
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
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

if TYPE_CHECKING:
    from deepkedi.keygen.train import StepReport


class Preset(str, enum.Enum):
    shipped = "shipped"
    tiny = "tiny"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _losses(report: "StepReport") -> str:
    g = report.generator
    return (
        f"adv {g['adversarial']:.3f} rec {g['reconstruction']:.3f} uni {g['uniformity']:.4f} "
        f"dec {g['decorrelation']:.4f} div {g['diversity']:.4f} D {report.discriminator:.3f}"
    )


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class PlainProgress:
    """Training progress as plain lines, for a log file or CI where a live bar shows nothing.

    A line (step/total, losses, elapsed, ETA) after the first step, at every tenth
    of the run, whenever ``interval`` seconds have passed since the last line, and
    after the last step. ``start`` is the step a resumed run begins at, so that the
    ETA counts only the steps this run has timed.
    """

    def __init__(
        self,
        console: Console,
        *,
        total: int,
        start: int = 0,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console, self._total, self._start, self._interval, self._clock = console, total, start, interval, clock
        self._began = self._last = clock()
        self._tenth = start * 10 // total if total else 0

    def __call__(self, report: "StepReport") -> None:
        now = self._clock()
        tenth = report.step * 10 // report.steps if report.steps else 10
        due = (
            report.step == self._start + 1
            or report.step >= report.steps
            or tenth > self._tenth
            or now - self._last >= self._interval
        )
        self._tenth = max(self._tenth, tenth)
        if not due:
            return
        self._last = now
        elapsed = now - self._began
        done = report.step - self._start
        eta = elapsed / done * (report.steps - report.step) if done > 0 else 0.0
        self._console.print(
            f"step {report.step}/{report.steps} ({100 * report.step // max(report.steps, 1)}%)  {_losses(report)}  "
            f"elapsed {_clock(elapsed)}  eta {_clock(eta)}",
            markup=False,
            highlight=False,
        )


def live_progress(console: Console) -> bool:
    """Whether ``console`` can redraw a progress bar in place (a terminal), rather than take plain lines."""
    return console.is_terminal and not console.is_dumb_terminal


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

    Progress goes to stderr: a live bar on a terminal; otherwise (a log file, CI) one
    plain line (step/total, losses, elapsed, ETA) at every tenth of the run and at
    least every 10 seconds.
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
    if not live_progress(err_console):
        with guarded():
            trainer.run(PlainProgress(err_console, total=config.steps, start=trainer.step), checkpoint=checkpoint)
    else:
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

            def show(report: "StepReport") -> None:
                progress.update(task, completed=report.step, losses=_losses(report))

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
    # soft_wrap: a log or a pipe must get the digest and the JSON on one line each, not cut at 80 columns.
    console.print(
        f"wrote {printable(output)} and {printable(output.with_suffix('.json').name)}; SHA-256 {digest}",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}),
        markup=False,
        soft_wrap=True,
    )
