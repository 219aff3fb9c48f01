"""Ed25519 signatures over ledgers (the ``cryptography`` package; no hand-rolled crypto).

A ledger names its signer in its header (``{"scheme": "ed25519", "public_key": hex, "key_id": ...}``)
and carries a signature over its header, over every entry's hash and over its head (the last hash
and the entry count): see :func:`dpsynth.accounting.format.signed_message`.

What a valid signature proves: the holder of that private key wrote this exact chain. What it
cannot prove: that the key holder is honest, or that the recorded noise was really applied (that
rests on running the released code). A forger can always re-sign with a key of their own, so a
verifier must compare the signer with a key they trust (``--public-key``, ``--trust-key-id``, or
the owner's own key on the owner's machine).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dpsynth.accounting.keys import KeyFileError, load_signing_key_bytes

SCHEME = "ed25519"


def key_id_of(public_key_hex: str) -> str:
    """A short public identifier of a public key: ``ed25519:`` + 16 hex digits of its SHA-256."""
    return f"{SCHEME}:" + hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """A private signing key held in memory (never serialised)."""

    private_key: Ed25519PrivateKey

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Signer":
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls) -> "Signer":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def owner(cls) -> "Signer":
        """The data owner's key (``DPSYNTH_SIGNING_KEY`` or ``$DPSYNTH_HOME/signing.key``, created on first use)."""
        return cls.from_bytes(load_signing_key_bytes())

    @property
    def public_key_hex(self) -> str:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw.hex()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key_hex)

    def describe(self) -> dict[str, str]:
        """The ``signer`` block of a ledger header."""
        return {"scheme": SCHEME, "public_key": self.public_key_hex, "key_id": self.key_id}

    def sign(self, message: bytes) -> str:
        return self.private_key.sign(message).hex()

    def __repr__(self) -> str:  # never show key material
        return f"Signer(key_id={self.key_id!r})"


def verify_signature(public_key_hex: str, message: bytes, signature_hex: object) -> bool:
    """True when ``signature_hex`` is a valid Ed25519 signature of ``message`` under the key."""
    if not isinstance(signature_hex, str):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def read_public_key(path: str | Path) -> str:
    """A public key from a file: 64 hex digits (as ``dpsynth keys show-public`` prints) or PEM."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(f"{path} is not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    token = text.split()[-1] if text else ""
    try:
        raw = bytes.fromhex(token)
    except ValueError as exc:
        raise KeyFileError(f"{path} holds neither 64 hex digits nor a PEM public key") from exc
    if len(raw) != 32:
        raise KeyFileError(f"{path}: an Ed25519 public key is 32 bytes (got {len(raw)})")
    return raw.hex()
