"""The ledger file format: schema constants, the canonical text, and what each hash and signature covers.

This module is the bottom of the accounting package's ledger code: :mod:`.ledger` writes documents
in this format and :mod:`.verify` checks them; neither imports the other's internals.

Layout of a ledger document (``dpsynth-ledger/2``)::

    {schema, ledger_id, created, budget, source, signer,     <- the header
     header_hash, header_signature,
     entries: [{..., seq, time, prev_hash, hash, signature}],
     head_hash, head_signature}

* ``header_hash`` = SHA-256 of the canonical JSON of the header (which includes the signer's public key).
* each entry's ``hash`` = SHA-256 of the entry without ``hash`` and ``signature``; ``prev_hash`` is
  the previous entry's hash (the header's for the first), so the hashes form a chain.
* ``head_hash`` = the last entry's hash (the header's for an empty ledger).
* signatures (Ed25519, when ``signer`` is not null) cover a domain-separated message naming what
  is signed, so a signature over one thing can never stand in for another: see :func:`signed_message`.
"""

from __future__ import annotations

import json
from typing import Any

from dpsynth.accounting.serialization import sha256_hex

SCHEMA = "dpsynth-ledger/2"
ADD_OR_REMOVE_ONE = "add_or_remove_one"
COMPOSITION_RULE = "basic"
SAMPLING_SCHEMES = ("none", "poisson", "partition")
#: ``charge`` spends; ``completion`` closes a charge; ``postprocessing`` is free; ``release`` binds the
#: data and card files; ``real-records-included`` marks an output that holds real records (not DP).
ENTRY_KINDS = ("charge", "completion", "postprocessing", "release", "real-records-included")
HEADER_KEYS = ("schema", "ledger_id", "created", "budget", "source", "signer")
TOP_LEVEL_KEYS = HEADER_KEYS + ("entries", "header_hash", "header_signature", "head_hash", "head_signature")
UNHASHED_ENTRY_KEYS = ("hash", "signature")


def ledger_text(doc: dict[str, Any]) -> str:
    """The one canonical on-disk form of a ledger document."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def header_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in HEADER_KEYS}


def header_hash(doc: dict[str, Any]) -> str:
    return sha256_hex(header_of(doc))


def entry_hash(entry: dict[str, Any]) -> str:
    return sha256_hex({k: v for k, v in entry.items() if k not in UNHASHED_ENTRY_KEYS})


def signed_message(what: str, ledger_id: str, digest: str, count: int | None = None) -> bytes:
    """The exact bytes a ledger signature covers.

    ``what`` is ``header``, ``entry`` or ``head``; ``digest`` the hash signed; ``count`` (for
    ``head``) the number of entries, so a truncated ledger cannot reuse a longer one's head signature.
    """
    parts = ["dpsynth-ledger-signature/2", what, ledger_id, digest]
    if count is not None:
        parts.append(str(int(count)))
    return "\n".join(parts).encode("utf-8")
