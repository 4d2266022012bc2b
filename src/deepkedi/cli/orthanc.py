"""`kedi orthanc`: Orthanc's encrypted storage area (docs/ORTHANC.md).

`kedi orthanc config` writes an Orthanc configuration and the plugin script that installs
the storage area; `kedi orthanc study-key` says which keystore key protects a study.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import EXIT_INPUT, EXIT_USAGE, GuardedTyper, console, examples_epilog, fail, guarded
from deepkedi.cli.keys import JsonOpt, KekFileOpt, KeystoreOpt, PassphraseFileOpt, actor, open_keystore

__all__ = ["config", "study_key"]

orthanc_app = GuardedTyper(
    name="orthanc",
    help="Orthanc with encrypted storage: every file Orthanc writes becomes a deepkedi container under a "
    "per-study keystore key (docs/ORTHANC.md).",
    epilog=examples_epilog(
        "openssl rand -hex 32 > kek.hex",
        "kedi keys init --kek-file kek.hex",
        "kedi orthanc config -o orthanc-home --kek-file kek.hex",
        note="Then start Orthanc with it: /usr/sbin/Orthanc orthanc-home/orthanc.json",
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(orthanc_app, name="orthanc")

InstanceOpt = Annotated[str, typer.Option("--instance", help="This Orthanc's name in key labels and the audit trail.")]


@orthanc_app.command(
    "config",
    examples=(
        "openssl rand -hex 32 > kek.hex",
        "kedi keys init --kek-file kek.hex",
        "kedi orthanc config -o orthanc-home --kek-file kek.hex --http-port 8043",
    ),
)
def config(
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for orthanc.json, the plugin script and data.")],
    kek_file: KekFileOpt = None,
    keystore: KeystoreOpt = None,
    storage: Annotated[Path | None, typer.Option("--storage", help="Encrypted files (default OUT/storage).")] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Orthanc's index, in clear (default OUT/index).")
    ] = None,
    http_port: Annotated[int, typer.Option("--http-port", help="Orthanc's REST port.")] = 8042,
    dicom_port: Annotated[int, typer.Option("--dicom-port", help="Orthanc's DICOM port.")] = 4242,
    instance: InstanceOpt = "orthanc",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing configuration.")] = False,
) -> None:
    """Write OUT/orthanc.json and OUT/deepkedi_storage.py: Orthanc on loopback with the encrypted storage area.

    The keystore must exist and open with --kek-file (the plugin reads the KEK from that file at
    each start: a passphrase keystore cannot be used). The plugin script uses this Python's
    deepkedi and site-packages; Orthanc's Python plugin must be the same Python version (3.11).
    """
    from deepkedi.fileio import atomic_output, make_output_folder
    from deepkedi.server.orthanc_storage import StorageSettings, orthanc_configuration, plugin_script

    if kek_file is None:
        fail("give --kek-file: Orthanc's plugin unlocks the keystore with that file at each start", EXIT_USAGE)
    out = out.resolve()
    with open_keystore(keystore, None, kek_file) as store:  # checks the KEK before anything is written
        url = store.url
    settings = StorageSettings(
        storage=(storage or out / "storage").resolve(), keystore_url=url, kek_file=kek_file.resolve(), instance=instance
    )
    script = out / "deepkedi_storage.py"
    configuration = orthanc_configuration(
        settings, script=script, index=(index or out / "index").resolve(), http_port=http_port, dicom_port=dicom_port
    )
    with guarded():
        make_output_folder(out, mode=0o700)
        for folder in (settings.storage, Path(configuration["IndexDirectory"])):
            make_output_folder(folder, mode=0o700)
        with atomic_output(script, force=force, mode=0o644) as fh:
            fh.write(plugin_script().encode("utf-8"))
        with atomic_output(out / "orthanc.json", force=force, mode=0o600) as fh:
            fh.write(json.dumps(configuration, indent=2).encode("utf-8"))
    console.print(f"wrote {out / 'orthanc.json'} and {script}", markup=False, soft_wrap=True)
    console.print(f"start Orthanc: /usr/sbin/Orthanc {out / 'orthanc.json'}", markup=False, soft_wrap=True)


@orthanc_app.command(
    "study-key",
    examples=(
        "openssl rand -hex 32 > kek.hex",
        "kedi keys init --kek-file kek.hex",
        "kedi orthanc config -o orthanc-home --kek-file kek.hex",
        "kedi orthanc study-key 1.2.3.4 --kek-file kek.hex || echo none",
    ),
)
def study_key(
    study_uid: Annotated[str, typer.Argument(help="The StudyInstanceUID.")],
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    instance: InstanceOpt = "orthanc",
    as_json: JsonOpt = False,
) -> None:
    """Print the id of the key that protects a study in Orthanc (then `kedi keys revoke ID` to shred it).

    Exit code 4 when that Orthanc holds no such study (or has not started once with this keystore).
    """
    from deepkedi.server.orthanc_storage import find_study_key

    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        key_id = find_study_key(store, study_uid, actor=actor(), instance=instance)
        state = None if key_id is None else store.key_info(key_id).state
    if key_id is None:
        fail(f"Orthanc {instance!r} holds no key for that study", EXIT_INPUT)
    if as_json:
        typer.echo(json.dumps({"key_id": key_id, "state": state, "instance": instance}, sort_keys=True))
    else:
        console.print(key_id, markup=False)
