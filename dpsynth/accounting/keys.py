"""The data owner's two secrets: the source key (keyed fingerprints) and the ledger signing key.

Both live in the owner's dpsynth home (``$DPSYNTH_HOME``, default ``~/.config/dpsynth``), are
created on first use with mode 0600 (by an exclusive create + link, so two processes never make
two keys), and are never written into any output, ledger or card.

* source key (``source.key``, or ``DPSYNTH_SOURCE_KEY`` as hex): >= 32 random bytes for HMAC-SHA256
  fingerprints (:mod:`.fingerprint`).
* signing key (``signing.key``, or ``DPSYNTH_SIGNING_KEY`` as hex of the 32-byte Ed25519 private
  key): signs every ledger head (:mod:`.signing`). ``dpsynth keys show-public`` prints its public key.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from dpsynth.errors import DpsynthError

#: Shortest source key accepted (bytes): HMAC-SHA256 keys shorter than the hash output weaken it.
MIN_SOURCE_KEY_BYTES = 32


class KeyFileError(DpsynthError, ValueError):
    """A key is malformed, too short, or unreadable."""


def dpsynth_home() -> Path:
    """The owner's dpsynth folder: ``$DPSYNTH_HOME`` or ``~/.config/dpsynth``."""
    home = os.environ.get("DPSYNTH_HOME")
    return Path(home) if home else Path.home() / ".config" / "dpsynth"


def source_key_path() -> Path:
    return dpsynth_home() / "source.key"


def signing_key_path() -> Path:
    return dpsynth_home() / "signing.key"


def _hex_bytes(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError as exc:
        raise KeyFileError(f"{what} is not hex") from exc


def create_secret_file(path: Path, secret: bytes, *, notice: str | None = None) -> bytes:
    """Write ``secret`` (hex) to ``path`` with mode 0600 unless it exists; return what is there now.

    Atomic and race-free: the secret goes to a private temp file that is hard-linked into place,
    which fails if another process created the file first (then its key is used).
    """
    if path.exists():
        return _hex_bytes(path.read_text(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex())
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
        if notice:
            print(notice.format(path=path), file=sys.stderr)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _hex_bytes(path.read_text(), str(path))


def _owner_secret(env_var: str, path: Path, notice: str) -> bytes:
    """The secret in ``env_var`` (hex), else in ``path`` (32 random bytes created there on first use)."""
    env = os.environ.get(env_var)
    if env:
        return _hex_bytes(env, env_var)
    return create_secret_file(path, secrets.token_bytes(32), notice=notice)


def load_source_key(source_key: bytes | None = None) -> bytes:
    """The owner's fingerprint key: the argument, else ``DPSYNTH_SOURCE_KEY`` (hex), else the key file."""
    if source_key is None:
        source_key = _owner_secret(
            "DPSYNTH_SOURCE_KEY",
            source_key_path(),
            "dpsynth: created your source key {path} (mode 0600). It keys the fingerprints that let you "
            "check which data a release came from; keep it private and back it up.",
        )
    if len(source_key) < MIN_SOURCE_KEY_BYTES:
        raise KeyFileError(f"a source key must be at least {MIN_SOURCE_KEY_BYTES} bytes (got {len(source_key)})")
    return source_key


def load_signing_key_bytes() -> bytes:
    """The owner's 32-byte Ed25519 private key: ``DPSYNTH_SIGNING_KEY`` (hex), else the key file."""
    raw = _owner_secret(
        "DPSYNTH_SIGNING_KEY",
        signing_key_path(),
        "dpsynth: created your ledger signing key {path} (mode 0600). Every ledger you write is signed "
        "with it; `dpsynth keys show-public` prints the public key reviewers need.",
    )
    if len(raw) != 32:
        raise KeyFileError(f"an Ed25519 signing key is 32 bytes (got {len(raw)})")
    return raw
