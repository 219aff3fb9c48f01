"""Keyed fingerprints that identify a source dataset without revealing anything about it.

A plain hash of the private data would let anyone holding a candidate dataset test whether it was
the source -- a deterministic function of the data, which DP forbids publishing. We therefore use
HMAC-SHA256 under a *source key* that stays with the data owner: the key comes from the
``source_key`` argument, else the environment variable ``DPSYNTH_SOURCE_KEY`` (hex), else a
key file ``$DPSYNTH_HOME/source.key`` (default ``~/.config/dpsynth/source.key``, created with mode
0600 on first use). Without the key the fingerprint is indistinguishable from random; with it, the
owner can check which data a ledger came from (``dpsynth ledger verify --source FILE``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Iterable

import pandas as pd

FINGERPRINT_SCHEME = "hmac-sha256"


def default_key_path() -> Path:
    home = os.environ.get("DPSYNTH_HOME")
    base = Path(home) if home else Path.home() / ".config" / "dpsynth"
    return base / "source.key"


def load_source_key(source_key: bytes | None = None) -> bytes:
    """The data owner's fingerprint key (see the module docstring for where it comes from)."""
    if source_key is not None:
        if len(source_key) < 16:
            raise ValueError("a source key must be at least 16 bytes")
        return source_key
    env = os.environ.get("DPSYNTH_SOURCE_KEY")
    if env:
        return bytes.fromhex(env)
    path = default_key_path()
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    try:
        os.link(tmp, path)  # atomic, fails if another process created it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def fingerprint_bytes(data: bytes, source_key: bytes | None = None) -> str:
    """Keyed fingerprint of raw bytes (e.g. the input file)."""
    mac = hmac.new(load_source_key(source_key), data, hashlib.sha256).hexdigest()
    return f"{FINGERPRINT_SCHEME}:{mac}"


def fingerprint_dataframe(df: pd.DataFrame, source_key: bytes | None = None) -> str:
    """Keyed fingerprint of a table's content (column names, dtypes and values, in order)."""
    mac = hmac.new(load_source_key(source_key), digestmod=hashlib.sha256)
    mac.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    mac.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return f"{FINGERPRINT_SCHEME}:{mac.hexdigest()}"


def fingerprint_texts(texts: Iterable[str], labels: Iterable[object] | None = None, source_key: bytes | None = None) -> str:
    """Keyed fingerprint of a list of texts (and labels, when given)."""
    mac = hmac.new(load_source_key(source_key), digestmod=hashlib.sha256)
    labels_list = list(labels) if labels is not None else None
    for i, text in enumerate(texts):
        mac.update(len(text.encode()).to_bytes(8, "big") + text.encode())
        if labels_list is not None:
            mac.update(repr(labels_list[i]).encode())
    return f"{FINGERPRINT_SCHEME}:{mac.hexdigest()}"
