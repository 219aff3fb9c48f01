"""Salted keyed fingerprints that let the data owner re-check a release's source, and nobody else link releases.

A plain hash of the private data would let anyone holding a candidate dataset test whether it was
the source -- a deterministic function of the data, which DP forbids publishing. An unsalted keyed
hash is still the same value in every release from the same data (and changes when one person is
added), so two releases would reveal whether the data changed. Hence each fingerprint is

    ``hmac-sha256-salted:<salt hex>:<HMAC-SHA256(source key, salt || data) hex>``

with a fresh 16-byte random salt per fingerprint (recorded in it). Without the source key the MAC
is indistinguishable from random and two fingerprints of the same data are unlinkable; with it, the
owner recomputes the MAC under the recorded salt (``dpsynth ledger verify --source FILE``).
The source key is the owner's (:mod:`dpsynth.accounting.keys`: >= 32 bytes, mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Iterable

import pandas as pd

from dpsynth.accounting.keys import load_source_key

FINGERPRINT_SCHEME = "hmac-sha256-salted"
SALT_BYTES = 16


def _finish(mac: "hmac.HMAC", salt: bytes) -> str:
    return f"{FINGERPRINT_SCHEME}:{salt.hex()}:{mac.hexdigest()}"


def _new_mac(source_key: bytes | None, salt: bytes | None) -> tuple["hmac.HMAC", bytes]:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    mac = hmac.new(load_source_key(source_key), digestmod=hashlib.sha256)
    mac.update(salt)
    return mac, salt


def fingerprint_bytes(data: bytes, source_key: bytes | None = None, *, salt: bytes | None = None) -> str:
    """Salted keyed fingerprint of raw bytes (e.g. the input file)."""
    mac, salt = _new_mac(source_key, salt)
    mac.update(data)
    return _finish(mac, salt)


def fingerprint_dataframe(df: pd.DataFrame, source_key: bytes | None = None, *, salt: bytes | None = None) -> str:
    """Salted keyed fingerprint of a table's content (column names, dtypes and values, in order)."""
    mac, salt = _new_mac(source_key, salt)
    mac.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    mac.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return _finish(mac, salt)


def fingerprint_texts(
    texts: Iterable[str], labels: Iterable[object] | None = None, source_key: bytes | None = None, *, salt: bytes | None = None
) -> str:
    """Salted keyed fingerprint of a list of texts (and labels, when given)."""
    mac, salt = _new_mac(source_key, salt)
    labels_list = list(labels) if labels is not None else None
    for i, text in enumerate(texts):
        mac.update(len(text.encode()).to_bytes(8, "big") + text.encode())
        if labels_list is not None:
            mac.update(repr(labels_list[i]).encode())
    return _finish(mac, salt)


def salt_of(fingerprint: str) -> bytes | None:
    """The salt recorded in a fingerprint (``None`` when it is not of this scheme)."""
    parts = fingerprint.split(":")
    if len(parts) != 3 or parts[0] != FINGERPRINT_SCHEME:
        return None
    try:
        return bytes.fromhex(parts[1])
    except ValueError:
        return None


def matches_bytes(fingerprint: str, data: bytes, source_key: bytes | None = None) -> bool:
    """True when ``fingerprint`` is of ``data`` under the owner's key (constant-time compare)."""
    salt = salt_of(fingerprint)
    return salt is not None and hmac.compare_digest(fingerprint, fingerprint_bytes(data, source_key, salt=salt))


def matches_dataframe(fingerprint: str, df: pd.DataFrame, source_key: bytes | None = None) -> bool:
    salt = salt_of(fingerprint)
    return salt is not None and hmac.compare_digest(fingerprint, fingerprint_dataframe(df, source_key, salt=salt))
