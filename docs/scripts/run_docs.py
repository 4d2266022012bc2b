"""Run the shell and Python blocks of README.md and docs/*.md as a reader would; write docs/TOUR.md.

Each document runs in a fresh temporary folder that holds only what ``kedi samples .``
writes (so every name the docs use exists), with ``HOME`` pointing inside it (the
default keystore is the reader's own, empty). Its blocks run in order, so a file one
block writes is there for the next, as for a reader going down the page:

- ```` ```sh ```` / ```` ```bash ````: ``bash -euo pipefail``, with this interpreter's
  ``bin`` folder (where ``kedi`` is installed) first on ``PATH``;
- ```` ```python ````: a fresh interpreter per block, so every block is self-contained.

Every other fence names what it holds (``text``, ``console`` for a transcript,
``json``...) and is not run. A block preceded by ``<!-- docs-test: skip REASON -->``
is not run either; the reason is reported.

Usage::

    python docs/scripts/run_docs.py [DOC.md ...]      # run, report failures, exit 1 on any
    python docs/scripts/run_docs.py --tour docs/TOUR.md   # README.md's log (`make tour`)

``tests/test_docs_run.py`` runs every document through :func:`run_document`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Languages that run, and the interpreter each runs under.
SHELL = frozenset({"sh", "bash", "shell"})
PYTHON = frozenset({"python", "py"})
#: Fences that hold something to read, not to run.
PASSIVE = frozenset({"text", "console", "json", "toml", "ini", "yaml", "sql", "diff", "csv", "html", "xml"})
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>.+?)\s*-->")
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<lang>[^`\s]*)\s*$")
#: Seconds one block may run.
BLOCK_TIMEOUT = 300


def documents() -> list[Path]:
    """README.md and every docs/*.md, in a fixed order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    document: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip_reason: str | None = None

    @property
    def runnable(self) -> bool:
        return self.lang in SHELL | PYTHON and self.skip_reason is None

    @property
    def where(self) -> str:
        name = self.document.relative_to(ROOT) if self.document.is_relative_to(ROOT) else self.document
        return f"{name}:{self.line}"


def blocks(document: Path) -> list[Block]:
    """Every fenced block of ``document``; an unclosed fence is an error."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start, fence = index, match["fence"]
        previous = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.search(previous)
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].rstrip() != fence:
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"{document}:{start + 1}: the fence is never closed")
        found.append(
            Block(document, start + 1, match["lang"].lower(), "\n".join(body) + "\n", skip["reason"] if skip else None)
        )
        index += 1
    return found


@dataclass
class Outcome:
    """What one block did."""

    block: Block
    returncode: int
    output: str
    seconds: float


@dataclass
class Run:
    """The outcomes of one document's blocks, in order (the run stops at the first failure)."""

    document: Path
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.returncode != 0), None)


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEDI_")}
    home = folder / ".home"
    home.mkdir(exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([bin_dir, env.get("PATH", "/usr/bin:/bin")]),
        MPLBACKEND="Agg",
        COLUMNS="100",
        TERM="dumb",
        NO_COLOR="1",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    return env


#: Printed by the end of every shell block: where it left the reader (a ``cd`` carries on).
_CWD_MARK = "@@docs-cwd:"


def _execute(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        return done.returncode, done.stdout
    except subprocess.TimeoutExpired as exc:
        partial = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
        return 124, partial + f"\n[timed out after {BLOCK_TIMEOUT} s]"


def _take_cwd(output: str, cwd: Path) -> tuple[str, Path]:
    """``output`` without the cwd marker line, and the folder the marker names (``cwd`` if none)."""
    kept, where = [], cwd
    for line in output.splitlines(keepends=True):
        if line.startswith(_CWD_MARK):
            where = Path(line[len(_CWD_MARK) :].rstrip("\n"))
        else:
            kept.append(line)
    return "".join(kept).rstrip("\n") + ("\n" if kept else ""), where


def _run_block(block: Block, cwd: Path, env: dict[str, str], number: int) -> tuple[Outcome, Path]:
    """Run one block in ``cwd``; its outcome and the folder a shell block ended in."""
    started = time.perf_counter()
    if block.lang in SHELL:
        script = block.text + f'\nprintf "\\n{_CWD_MARK}%s\\n" "$PWD"\n'
        code, output = _execute(["bash", "-euo", "pipefail", "-c", script], cwd, env)
        output, cwd = _take_cwd(output, cwd)
    else:
        path = Path(env["HOME"]) / f"block-{number}.py"
        path.write_text(block.text, encoding="utf-8")
        code, output = _execute([sys.executable, str(path)], cwd, env)
    return Outcome(block, code, output, time.perf_counter() - started), cwd


def _samples(folder: Path, env: dict[str, str]) -> str:
    """``kedi samples .`` in ``folder``; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "deepkedi.cli", "samples", "."],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kedi samples failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def run_document(document: Path, folder: Path | None = None) -> Run:
    """Run ``document``'s blocks in order in ``folder`` (a new temporary one if None)."""
    with _folder(folder) as where:
        env = _environment(where)
        _samples(where, env)
        run = Run(document)
        cwd = where
        for number, block in enumerate(blocks(document)):
            if not block.runnable:
                continue
            outcome, cwd = _run_block(block, cwd, env, number)
            run.outcomes.append(outcome)
            if outcome.returncode != 0:
                break
        return run


@contextlib.contextmanager
def _folder(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory() as temporary:
        yield Path(temporary)


def describe_failure(outcome: Outcome, tail: int = 60) -> str:
    lines = outcome.output.splitlines()
    shown = "\n".join(lines[-tail:])
    return (
        f"{outcome.block.where}: the {outcome.block.lang} block exited {outcome.returncode}\n"
        f"--- block ---\n{outcome.block.text}--- output (last {tail} lines) ---\n{shown}"
    )


# --------------------------------------------------------------------------- the tour log


def _commands(block: Block) -> Iterator[str]:
    """A shell block's commands, one per line, comments and continuations kept."""
    pending = ""
    for line in block.text.splitlines():
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip():
        yield pending


def write_tour(target: Path) -> int:
    """Follow README.md command by command in a fresh folder and log commands and outputs to ``target``."""
    readme = ROOT / "README.md"
    out = [
        "# The README tour, as a newcomer runs it",
        "",
        "Every command of README.md's shell and Python blocks, run in order in an empty folder",
        "after `kedi samples .` (each shell block as one session; a `cd` carries on to the next",
        "block), with what each printed and its exit code. Regenerate with `make tour`",
        "(`python docs/scripts/run_docs.py --tour docs/TOUR.md`); `tests/test_docs_run.py`",
        "runs the same blocks in every `make test`. Timings are this run's, on the reference",
        "machine class (2 cores); random keys, salts and ids differ on every run.",
        "",
    ]
    failures = 0
    with _folder(None) as folder:
        env = _environment(folder)
        out += ["```console", "$ kedi samples .", _samples(folder, env).rstrip(), "```", ""]
        cwd = folder
        for number, block in enumerate(blocks(readme)):
            if block.skip_reason is not None and block.lang in SHELL | PYTHON:
                out += [f"Not run here ({block.where}): {block.skip_reason}.", ""]
                continue
            if not block.runnable:
                continue
            out += [f"From {block.where}:", "", "```console"]
            if block.lang in PYTHON:
                outcome, cwd = _run_block(block, cwd, env, number)
                steps = [(block.text, outcome.output, outcome.returncode, outcome.seconds)]
            else:
                steps, cwd = _shell_steps(block, cwd, env)
            for command, output, code, seconds in steps:
                if block.lang in PYTHON:
                    out += ["$ python - <<'EOF'", command.rstrip(), "EOF"]
                else:
                    out.append("$ " + command.rstrip().replace("\n", "\n  "))
                text = _strip_paths(output.strip("\n"), folder)
                if text:
                    out.append(text)
                out.append(f"[exit {code}, {seconds:.1f} s]")
                failures += code != 0
            out += ["```", ""]
    target.write_text("\n".join(out).rstrip() + "\n", encoding="utf-8")
    return failures


def _shell_steps(block: Block, cwd: Path, env: dict[str, str]) -> tuple[list[tuple[str, str, int, float]], Path]:
    """Run a shell block as one session (variables and ``cd`` carry on), command by command.

    Each command is bracketed by marker lines carrying its exit code and bash's
    clock, so that its output, status and time can be told apart; the session goes
    on after a failing command, as a reader's would.
    """
    commands = list(_commands(block))
    lines = ["set -o pipefail"]
    for index, command in enumerate(commands):
        lines.append(f'__t=$EPOCHREALTIME; printf "\\n@@tour-begin {index}\\n"')
        lines.append(command.rstrip("\n"))
        lines.append(f'__rc=$?; printf "\\n@@tour-end {index} %s %s %s\\n" "$__rc" "$__t" "$EPOCHREALTIME"')
    lines.append(f'printf "\\n{_CWD_MARK}%s\\n" "$PWD"')
    _, output = _execute(["bash", "-c", "\n".join(lines)], cwd, env)
    output, cwd = _take_cwd(output, cwd)
    steps: list[tuple[str, str, int, float]] = []
    collected: list[str] = []
    for line in output.splitlines():
        if line.startswith("@@tour-begin "):
            collected = []
        elif line.startswith("@@tour-end "):
            index, code, begun, ended = line.split()[1:]
            seconds = float(ended.replace(",", ".")) - float(begun.replace(",", "."))
            steps.append((commands[int(index)], "\n".join(collected), int(code), seconds))
        else:
            collected.append(line)
    for command in commands[len(steps) :]:  # the session ended early (exit in the block)
        steps.append((command, "\n".join(collected), 1, 0.0))
        collected = []
    return steps, cwd


#: A password a command prints once (the service's first admin): not copied into a committed log.
_PRINTED_PASSWORD = re.compile(r"(password: )\S+")


def _strip_paths(text: str, folder: Path) -> str:
    """The temporary folder's path, which differs on every run, shown as ``.``; printed passwords blanked."""
    for spelling in {str(folder), os.path.realpath(folder)}:
        text = text.replace(spelling + os.sep, "").replace(spelling, ".")
    return _PRINTED_PASSWORD.sub(r"\1<printed once; left out of this log>", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("documents", nargs="*", type=Path, help="Documents to run (default: all).")
    parser.add_argument("--tour", type=Path, help="Write README.md's command log to this file instead.")
    parser.add_argument("--keep", type=Path, help="Run in this folder and keep it.")
    args = parser.parse_args()
    if args.tour:
        failures = write_tour(args.tour)
        print(f"wrote {args.tour} ({failures} failing commands)")
        return 1 if failures else 0
    failed = 0
    for document in args.documents or documents():
        if not any(b.runnable for b in blocks(document)):
            continue
        folder = args.keep / document.stem if args.keep else None
        run = run_document(document.resolve(), folder)
        outcome = run.failed
        seconds = sum(o.seconds for o in run.outcomes)
        if outcome is None:
            print(f"ok    {document} ({len(run.outcomes)} blocks, {seconds:.1f} s)")
        else:
            failed += 1
            print(f"FAIL  {describe_failure(outcome)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
