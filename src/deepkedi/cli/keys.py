"""`kedi keys`: the keystore (init, new, list, show, rotate, rewrap, revoke, recipient, export, import, audit).

The keystore URL comes from ``--keystore``, else ``KEDI_KEYSTORE``, else a SQLite file in
the user's data folder (``$XDG_DATA_HOME/deepkedi/keystore.db``, default
``~/.local/share/deepkedi/keystore.db``). The KEK comes from ``--kek-file`` (32 bytes of
key material: a hybrid key file, or a file holding 32 raw bytes, 64 hex digits or base64),
``--passphrase-file``, ``KEDI_KEK`` (hex or base64), ``KEDI_PASSPHRASE``, or a prompt
when stdin is a terminal. A passphrase-sealed key file used as a KEK file is opened with
``KEDI_KEYFILE_PASSPHRASE``.
"""

import base64
import binascii
import getpass
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deepkedi.cli import app
from deepkedi.cli._common import (
    EXIT_AUTH,
    EXIT_USAGE,
    GuardedTyper,
    _passphrase,
    console,
    err_console,
    examples_epilog,
    exit_code_for,
    fail,
    guarded,
    printable,
    read_passphrase_file,
    refuse_special_file,
    resolve_passphrase,
)
from deepkedi.errors import DeepKediError, KeyNotFoundError
from deepkedi.fileio import atomic_output, make_output_folder

if TYPE_CHECKING:
    from deepkedi.cipher.keytypes import Key
    from deepkedi.keys.keystore import KekSource, Keystore

__all__ = [
    "actor",
    "default_keystore_url",
    "key_from_keystore",
    "keys_app",
    "open_keystore",
    "resolve_keystore_url",
]

keys_app = GuardedTyper(
    name="keys",
    help="The keystore: many master keys wrapped under one passphrase or KEK, with an audit trail.\n\n"
    "Unlocking it with a passphrase costs 0.27 s of scrypt, on purpose: the price of each guess for "
    "whoever copies the database. `kedi keys new` takes seconds more when it loads PyTorch for the "
    "ZZ-GAN key material; --no-gan gives as strong a key without it (docs/KEYSTORE.md).",
    epilog=examples_epilog(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --label study-1 --passphrase-file pw)",
        'kedi encrypt CT_small.dcm -o ct.kedi --key-id "$KEY" --passphrase-file pw',
        "kedi decrypt ct.kedi -o ct-restored.dcm --passphrase-file pw",
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(keys_app, name="keys")

KeystoreOpt = Annotated[
    str | None,
    typer.Option(
        "--keystore",
        help="Keystore URL (sqlite:///PATH or postgresql+psycopg://...); "
        "default $KEDI_KEYSTORE, else the user's data folder.",
    ),
]
PassphraseFileOpt = Annotated[
    Path | None, typer.Option("--passphrase-file", help="File holding the keystore passphrase.")
]
KekFileOpt = Annotated[
    Path | None,
    typer.Option("--kek-file", help="File holding 32 bytes of KEK material (a key file, raw, hex or base64)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


# ------------------------------------------------------------------------------------- resolution


def default_keystore_url() -> str:
    """``sqlite:///$XDG_DATA_HOME/deepkedi/keystore.db`` (``~/.local/share`` when XDG_DATA_HOME is unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data_home) / 'deepkedi' / 'keystore.db'}"


def resolve_keystore_url(option: str | None) -> str:
    """``--keystore``, else ``KEDI_KEYSTORE``, else :func:`default_keystore_url`.

    A bare path is taken as a SQLite file.
    """
    url = option or os.environ.get("KEDI_KEYSTORE") or default_keystore_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def actor() -> str:
    """Who runs the command, for the keystore's audit trail: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _material_from_text(text: bytes) -> bytes | None:
    stripped = text.strip()
    if len(stripped) == 64:
        try:
            return bytes.fromhex(stripped.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        decoded = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == 32 else None


def _kek_material(path: Path) -> bytes:
    """32 bytes of KEK material from a file: a hybrid key file's secret, 32 raw bytes, hex or base64."""
    refuse_special_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: cannot read KEK file ({exc.strerror})", EXIT_USAGE)
    if len(raw) == 32:  # raw material first: random bytes may well begin with "{" (1 file in 256)
        return raw
    if raw.lstrip().startswith(b"{"):
        from deepkedi.keys import load_key

        with guarded():
            return load_key(path, passphrase=os.environ.get("KEDI_KEYFILE_PASSPHRASE")).secret
    material = _material_from_text(raw)
    if material is None:
        fail(f"{path}: a KEK file holds 32 bytes (raw, 64 hex digits or base64) or is a kedi key file", EXIT_USAGE)
    return material


def _kek_source(passphrase_file: Path | None, kek_file: Path | None) -> "KekSource":
    """The current KEK: --kek-file, --passphrase-file, KEDI_KEK, KEDI_PASSPHRASE, or a prompt on a terminal."""
    from deepkedi.keys.keystore import PassphraseKek, RawKek

    if kek_file is not None and passphrase_file is not None:
        fail("give --kek-file or --passphrase-file, not both", EXIT_USAGE)
    if kek_file is not None:
        return RawKek(_kek_material(kek_file))
    if passphrase_file is None and os.environ.get("KEDI_KEK"):
        material = _material_from_text(os.environ["KEDI_KEK"].encode("ascii", "replace"))
        if material is None:
            fail("KEDI_KEK must hold 32 bytes as 64 hex digits or base64", EXIT_USAGE)
        return RawKek(material)
    passphrase = _passphrase(passphrase_file, Path("keystore"))
    if not passphrase:
        fail("the passphrase is empty", EXIT_USAGE)
    return PassphraseKek(passphrase)


def _new_kek_source(passphrase_file: Path | None, kek_file: Path | None, *, env: str, what: str) -> "KekSource":
    """A KEK for a new version: file options, then ``env``, then a confirmed prompt on a terminal."""
    from deepkedi.keys.keystore import PassphraseKek, RawKek

    if kek_file is not None and passphrase_file is not None:
        fail(f"give one {what} source, not both a KEK file and a passphrase file", EXIT_USAGE)
    if kek_file is not None:
        return RawKek(_kek_material(kek_file))
    passphrase = resolve_passphrase(
        passphrase_file,
        env=env,
        prompt=what.capitalize(),
        missing=f"no {what}: give a passphrase or KEK file option, or set {env}",
        confirm=True,
    )
    if not passphrase:
        fail(f"the {what} is empty", EXIT_USAGE)
    return PassphraseKek(passphrase)


def open_keystore(
    keystore: str | None, passphrase_file: Path | None = None, kek_file: Path | None = None, *, locked: bool = False
) -> "Keystore":
    """The keystore at ``--keystore`` (or the default), unlocked with the KEK the options resolve to."""
    from deepkedi.keys.keystore import Keystore

    url = resolve_keystore_url(keystore)
    source = None if locked else _kek_source(passphrase_file, kek_file)
    with guarded():
        return Keystore.open(url, kek_source=source)


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, sort_keys=True))


# --------------------------------------------------------------------------------------- commands


@keys_app.command(
    "init",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
    ),
)
def init(
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a keystore, protected by a passphrase (scrypt) or a KEK file."""
    from deepkedi.keys.keystore import Keystore

    url = resolve_keystore_url(keystore)
    if kek_file is None and passphrase_file is None and os.environ.get("KEDI_KEK"):
        source = _kek_source(None, None)
    else:
        # A new passphrase is asked twice on a terminal: a typo here would lock every key away.
        source = _new_kek_source(passphrase_file, kek_file, env="KEDI_PASSPHRASE", what="keystore passphrase")
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///") :]).parent
        if keystore is None and not os.environ.get("KEDI_KEYSTORE"):
            with guarded():
                make_output_folder(folder, mode=0o700)
    with guarded():
        store = Keystore.init(url, kek_source=source, actor=actor())
    with store:
        if as_json:
            _echo_json({"keystore": store.url, "kek_version": store.kek_version})
        else:
            console.print(
                f"created keystore {store.url} (KEK version {store.kek_version})", markup=False, soft_wrap=True
            )


@keys_app.command(
    "new",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "kedi keys new --label study-1 --passphrase-file pw",
    ),
)
def new(
    label: Annotated[str | None, typer.Option("--label", help="A public label (study, site, period).")] = None,
    no_gan: Annotated[
        bool,
        typer.Option("--no-gan", help="OS CSPRNG only, no ZZ-GAN material: no PyTorch to load, and as strong."),
    ] = False,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new master key in the keystore and print its id.

    With PyTorch installed the secret mixes a ZZ-GAN key image into 32 bytes of OS
    randomness, as `kedi keygen` does: loading PyTorch and running the generator once
    is most of this command's time (about 2 of its 2.8 s of CPU on a 2-core machine;
    more on a first run after a reboot). --no-gan skips it (0.9 s) and gives a key
    as strong: its strength rests on the OS randomness. Unlocking the keystore with a
    passphrase costs 0.27 s of scrypt, on purpose (docs/KEYSTORE.md).
    """
    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        key = store.new_key(label=label, actor=actor(), gan=False if no_gan else None)
    if as_json:
        _echo_json({"key_id": key.key_id_hex})
    else:
        console.print(key.key_id_hex, markup=False, soft_wrap=True)
    if "note" in key.provenance:
        err_console.print(f"note: {key.provenance['note']}", markup=False)


@keys_app.command(
    "list",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "kedi keys new --label study-1 --passphrase-file pw",
        "kedi keys list",
    ),
)
def list_(keystore: KeystoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the keys (ids, states, labels; never secrets). Needs no passphrase."""
    with open_keystore(keystore, locked=True) as store, guarded():
        infos = store.list_keys()
    if as_json:
        _echo_json([info.to_dict() for info in infos])
        return
    for info in infos:
        revoked = f" revoked {info.revoked_at}" if info.revoked_at else ""
        # Every field is escaped: a label holding a newline must not forge a row.
        typer.echo(
            printable(
                f"{info.key_id}  {info.created}  {info.state}{revoked}  kek v{info.kek_version}  "
                f"{info.label or ''}".rstrip()
            )
        )


@keys_app.command(
    "show",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --passphrase-file pw)",
        'kedi keys show "$KEY"',
    ),
)
def show(key_id: str, keystore: KeystoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show one key's public record (never the secret). Needs no passphrase."""
    with open_keystore(keystore, locked=True) as store, guarded():
        info = store.key_info(key_id)
    if as_json:
        _echo_json(info.to_dict())
        return
    for name, value in info.to_dict().items():
        shown = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        console.print(printable(f"{name}: {shown if shown is not None else '-'}"), markup=False, soft_wrap=True)


@keys_app.command(
    "rotate",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "echo 'a new, longer passphrase' > new-pw",
        "kedi keys rotate --passphrase-file pw --new-passphrase-file new-pw",
    ),
)
def rotate(
    new_passphrase_file: Annotated[
        Path | None, typer.Option("--new-passphrase-file", help="File holding the new passphrase.")
    ] = None,
    new_kek_file: Annotated[Path | None, typer.Option("--new-kek-file", help="File holding the new KEK.")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, help="Re-wrap this many keys per transaction (default: all in one)."),
    ] = None,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move the keystore to a new passphrase or KEK; data keys (and so every image) stay the same."""
    with open_keystore(keystore, passphrase_file, kek_file) as store:
        source = _new_kek_source(new_passphrase_file, new_kek_file, env="KEDI_NEW_PASSPHRASE", what="new passphrase")
        with guarded():
            version = store.rotate(source, actor=actor(), batch_size=batch_size)
    if as_json:
        _echo_json({"kek_version": version})
    else:
        console.print(f"rotated the keystore to KEK version {version}", markup=False, soft_wrap=True)


@keys_app.command(
    "rewrap",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "echo 'a new, longer passphrase' > new-pw",
        "kedi keys rotate --passphrase-file pw --new-passphrase-file new-pw \\\n    --batch-size 100",
        "kedi keys rewrap --passphrase-file new-pw --old-passphrase-file pw",
    ),
)
def rewrap(
    old_passphrase_file: Annotated[
        list[Path] | None, typer.Option("--old-passphrase-file", help="Passphrase of an older KEK version.")
    ] = None,
    old_kek_file: Annotated[
        list[Path] | None, typer.Option("--old-kek-file", help="KEK file of an older KEK version.")
    ] = None,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Finish an interrupted batched rotation: re-wrap keys still under an older KEK version."""
    from deepkedi.keys.keystore import PassphraseKek, RawKek

    old: list[KekSource] = []
    old.extend(PassphraseKek(read_passphrase_file(path)) for path in old_passphrase_file or [])
    old.extend(RawKek(_kek_material(path)) for path in old_kek_file or [])
    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        moved = store.rewrap(old, actor=actor())
        left = store.stragglers()
    if as_json:
        _echo_json({"rewrapped": moved, "kek_version": store.kek_version})
    else:
        console.print(f"re-wrapped {moved} key(s) under KEK version {store.kek_version}", markup=False, soft_wrap=True)
    if left:
        fail(f"keys still under older KEK versions: {left}", EXIT_AUTH)


@keys_app.command(
    "revoke",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --passphrase-file pw)",
        'kedi keys revoke "$KEY" --yes --passphrase-file pw',
    ),
)
def revoke(
    key_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the key's secret is destroyed for good.")] = False,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key (crypto-shredding): images under it can no longer be decrypted here. Irreversible."""
    if not yes:
        fail(f"revoking destroys key {key_id} for good (images under it become unreadable); add --yes", EXIT_USAGE)
    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        info = store.revoke(key_id, actor=actor())
    if as_json:
        _echo_json(info.to_dict())
    else:
        console.print(f"revoked key {info.key_id} at {info.revoked_at}", markup=False, soft_wrap=True)


@keys_app.command(
    "recipient",
    examples=("kedi keys recipient -o partner",),
)
def recipient(
    output: Annotated[Path, typer.Option("-o", "--output", help="NAME: writes NAME.key (0600) and NAME.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
) -> None:
    """Create an X25519 recipient key pair for receiving key exports from other sites."""
    from deepkedi.keys.keystore import recipient_keypair

    private_pem, public_pem = recipient_keypair()
    private_path, public_path = Path(f"{output}.key"), Path(f"{output}.pub")
    with guarded():
        with atomic_output(private_path, force=force, mode=0o600) as fh:
            fh.write(private_pem)
        with atomic_output(public_path, force=force, mode=0o644) as fh:
            fh.write(public_pem)
    console.print(
        f"wrote {printable(private_path)} (secret, 0600) and {printable(public_path)} "
        "(give this one to exporting sites)",
        markup=False,
        soft_wrap=True,
    )


@keys_app.command(
    "export",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --passphrase-file pw)",
        "kedi keys recipient -o partner",
        'kedi keys export "$KEY" --to partner.pub -o out.kexp --passphrase-file pw',
    ),
)
def export(
    key_ids: Annotated[list[str], typer.Argument(help="Key ids to export.")],
    to: Annotated[Path, typer.Option("--to", help="The recipient's public key (NAME.pub).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Export file to write (0600).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing export file.")] = False,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
) -> None:
    """Seal keys for another site's recipient key (X25519 + AES-256-GCM)."""
    refuse_special_file(to)
    with guarded():
        public_pem = to.read_bytes()
    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        blob = store.export(key_ids, public_pem, actor=actor())
    with guarded(), atomic_output(output, force=force, mode=0o600) as fh:
        fh.write(blob)
    console.print(f"exported {len(set(key_ids))} key(s) to {printable(output)}", markup=False)


@keys_app.command(
    "import",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --passphrase-file pw)",
        "kedi keys recipient -o partner",
        'kedi keys export "$KEY" --to partner.pub -o out.kexp --passphrase-file pw',
        "export KEDI_KEYSTORE=sqlite:///partner.db",
        "kedi keys init --passphrase-file pw",
        "kedi keys import out.kexp --identity partner.key --passphrase-file pw",
    ),
)
def import_(
    file: Annotated[Path, typer.Argument(help="Export file written by 'kedi keys export'.")],
    identity: Annotated[Path, typer.Option("--identity", help="Our recipient private key (NAME.key).")],
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import keys sealed to our recipient key; keys revoked here are never brought back."""
    refuse_special_file(file)
    refuse_special_file(identity)
    with guarded():
        blob, private_pem = file.read_bytes(), identity.read_bytes()
    with open_keystore(keystore, passphrase_file, kek_file) as store, guarded():
        outcome = store.import_(blob, private_pem, actor=actor())
    if as_json:
        _echo_json(outcome)
        return
    for key_id, what in outcome.items():
        console.print(printable(f"{key_id}  {what}"), markup=False, soft_wrap=True)


@keys_app.command(
    "audit",
    examples=(
        "echo 'correct horse battery staple' > pw",
        "kedi keys init --passphrase-file pw",
        "KEY=$(kedi keys new --passphrase-file pw)",
        "kedi keys audit --verify --passphrase-file pw",
    ),
)
def audit(
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the MAC chain (needs the passphrase or KEK).")
    ] = False,
    keystore: KeystoreOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    kek_file: KekFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the audit trail; with --verify, check it has not been edited, reordered or cut (exit 3 if so)."""
    with open_keystore(keystore, passphrase_file, kek_file, locked=not verify) as store, guarded():
        entries = store.audit_entries()
        ok, first_bad = store.verify_audit() if verify else (None, None)
    if as_json:
        record: dict[str, object] = {"entries": [e.to_dict() for e in entries]}
        if verify:
            record["verified"] = ok
            record["first_bad_seq"] = first_bad
        _echo_json(record)
    else:
        for e in entries:
            details = json.dumps(dict(e.details), sort_keys=True) if e.details else ""
            file_part = f" file={e.file_sha256}" if e.file_sha256 else ""
            # typer.echo, not rich: one entry per line whatever the terminal width (grep-able).
            line = f"{e.seq:>6} {e.time} {e.actor} {e.operation} {e.key_id or '-'}{file_part} {details}".rstrip()
            typer.echo(printable(line))
        if verify and ok:
            console.print(f"audit trail verified: {len(entries)} entries", markup=False, soft_wrap=True)
    if verify and not ok:
        fail(f"the audit trail was modified: first bad entry at sequence {first_bad}", EXIT_AUTH)


# ------------------------------------------------------------------------------ for other commands


def key_from_keystore(
    url: str | None, key_id: str, passphrase_file: Path | None, *, file_sha256: str | None = None
) -> "Key":
    """The master key ``key_id`` from the keystore, for ``kedi encrypt`` / ``kedi decrypt``.

    ``url`` ``None`` means ``KEDI_KEYSTORE`` or the default. The access is audited
    (with ``file_sha256`` when given). Exits (``exit_code_for``): 2 bad usage, 3
    unknown key id, wrong passphrase or revoked key, 4 no keystore there.
    """
    with open_keystore(url, passphrase_file, None) as store:
        try:
            return store.get_key(key_id, actor=actor(), file_sha256=file_sha256)
        except KeyNotFoundError as exc:
            fail(f"{exc} ({store.url})", exit_code_for(exc))
        except (DeepKediError, ValueError, OSError):
            with guarded():
                raise
    raise AssertionError("unreachable")
