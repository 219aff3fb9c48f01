"""The dataset card written beside every release (``out.csv.card.yaml``), generated from its ledger.

Fields (``null`` where not known): ``generator_model``, ``generation_date``, ``source_real_data``,
``synthetic_ratio``, ``filters``, ``evals`` (``real_holdout``, ``temporal_holdout``,
``contamination_scan``, ``diversity_metrics``), ``release_decision``, and ``privacy``
(``epsilon``, ``delta``, ``unit``, ``neighbouring_relation``, ``accountant``, ``composition_rule``,
``ledger_head_hash``). The privacy block is derived from the ledger only, so it can be re-checked
with ``dpsynth ledger verify``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dpsynth.accounting.ledger import Ledger
from dpsynth.atomic import atomic_write_text

CARD_SCHEMA = "dpsynth-card/1"
EVAL_KEYS = ("real_holdout", "temporal_holdout", "contamination_scan", "diversity_metrics")


def build_card(
    ledger: Ledger,
    *,
    generator_model: Any = None,
    source_real_data: Any = None,
    synthetic_ratio: float | None = None,
    filters: list[dict[str, Any]] | None = None,
    evals: dict[str, Any] | None = None,
    release_decision: str | None = None,
    generation_date: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A card for a release whose privacy spend is ``ledger``.

    ``filters`` entries should say whether they read private data (``uses_private_data``).
    """
    charges = ledger.charges()
    accountants = sorted({c["charge"]["accountant"] for c in charges})
    evals_block = {k: None for k in EVAL_KEYS}
    if evals:
        evals_block.update(evals)
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "generator_model": generator_model,
        "generation_date": generation_date or datetime.now(timezone.utc).date().isoformat(),
        "source_real_data": source_real_data
        if source_real_data is not None
        else {"name": ledger.source_name, "fingerprints": list(dict.fromkeys(ledger.source_fingerprints())) or None},
        "synthetic_ratio": synthetic_ratio,
        "filters": filters if filters is not None else [],
        "evals": evals_block,
        "release_decision": release_decision,
        "privacy": {
            "epsilon": ledger.epsilon_spent,
            "delta": ledger.delta_spent,
            "epsilon_budget": ledger.budget.epsilon,
            "delta_budget": ledger.budget.delta,
            "unit": ledger.privacy_unit,
            "neighbouring_relation": ledger.neighbouring_relation,
            "accountant": ", ".join(accountants) if accountants else None,
            "composition_rule": "basic composition across calls; within a call the smallest of the PLD, RDP, basic-composition and per-stage bounds that apply",
            "mechanisms": [c["mechanism"] for c in charges],
            "ledger_id": ledger.ledger_id,
            # the head when the card was built; the ledger's release entry after it binds this card
            "ledger_head_hash": ledger.head_hash,
            "signer_key_id": ledger.signer_key_id,
            "differentially_private": not ledger.contains_real_records,
        },
    }
    if extra:
        card.update(extra)
    return card


def card_text(card: dict[str, Any]) -> str:
    return yaml.safe_dump(card, sort_keys=False, allow_unicode=True)


def read_card(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a dataset card")
    return data


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    return atomic_write_text(Path(path), card_text(card))


def merge_card(card: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of ``card`` with top-level ``fields`` replaced (``evals`` is merged key by key)."""
    card = dict(card)
    for key, value in fields.items():
        if key == "evals" and isinstance(value, dict):
            merged = dict(card.get("evals") or {})
            merged.update(value)
            card["evals"] = merged
        else:
            card[key] = value
    return card


def update_card(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Update top-level fields of an existing card (``evals`` is merged key by key).

    Writes the card alone: for a released card, whose hash the ledger binds, use
    :func:`dpsynth.release.rebind_card` instead.
    """
    card = merge_card(read_card(path), **fields)
    write_card(path, card)
    return card
