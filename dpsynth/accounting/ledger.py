"""The privacy ledger: an append-only, hash-chained, signed JSON record of every privacy charge.

One ledger belongs to one source dataset and one privacy unit (e.g. "one row of the input
table", "one private text"). It holds the budget and an ordered list of entries:

* ``charge`` -- a DP step: operation, mechanism, the serialised ``DpEvent`` (and its stages), the
  neighbouring relation, privacy unit, sampling scheme, public parameters, the charge per
  accountant, the cumulative spend after it, dependency versions, time and provenance.
* ``completion`` -- the step ran (``status: completed``) or broke off after its charge
  (``status: failed``; the charge stands): the salted keyed source fingerprint and what was produced.
* ``postprocessing`` -- a free step on DP outputs (e.g. sampling more rows from a DP model), with a
  ``NoOpDpEvent`` and zero charge, kept for provenance.
* ``release`` -- the SHA-256 of the data file and of the card written with this ledger.
* ``real-records-included`` -- the output holds real records verbatim: it is not a DP release.

Every private step has one shape: plan from public inputs, then ``with ledger.spend(plan,
operation=...) as step:`` (charge before any private record is read; completion or failure recorded
on exit; never a refund).

Composition rule across entries: **basic composition** (sum of epsilons, sum of deltas). It stays
valid when a user picks the next call's budget after seeing earlier outputs (fully adaptive
composition, Rogers et al. 2016), unlike PLD composition across calls. Inside one call, whose
parameters are fixed from public inputs before data is read, the charge is the minimum over the
PLD, RDP (and stage-wise basic) bounds of that call's composed event.

Integrity: every entry stores ``prev_hash`` and its own ``hash`` (see :mod:`.format`), and the
owner's Ed25519 key (:mod:`.signing`) signs the header, every entry and the head at every append.
Editing any entry and re-hashing the chain breaks a signature; so does truncating or reordering.
A forger can re-sign with their own key, which is why ``verify`` compares the signer with a key
the verifier trusts. What no file can prove: that the recorded noise was really applied.

Seeds of privacy noise are never written: a provenance key that looks like one is refused.
"""

from __future__ import annotations

import copy
import json
import math
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from dp_accounting import dp_event

from dpsynth.accounting.accountants import Charge, Stage, composed_event, compute_charge
from dpsynth.accounting.budget import BudgetExceededError, PrivacyBudget
from dpsynth.accounting.format import (
    ADD_OR_REMOVE_ONE,
    COMPOSITION_RULE,
    SAMPLING_SCHEMES,
    SCHEMA,
    entry_hash,
    header_hash,
    ledger_text,
    signed_message,
)
from dpsynth.accounting.serialization import LedgerFormatError, event_from_json, event_to_json, sha256_hex
from dpsynth.accounting.signing import Signer
from dpsynth.accounting.verify import verify_document, verify_text
from dpsynth.accounting.versions import dependency_versions
from dpsynth.atomic import atomic_write_text
from dpsynth.errors import DpsynthError

_SECRET_SEED_KEY = re.compile(r"(noise|privacy|dp|sampling).*seed|seed.*(noise|privacy)", re.IGNORECASE)
#: ``signer`` argument meaning "the data owner's key" (loaded, or created, only when first needed).
OWNER = "owner"


class LedgerSigningError(DpsynthError, RuntimeError):
    """The ledger cannot be appended to with the signing key at hand."""


@runtime_checkable
class PrivatePlan(Protocol):
    """What :meth:`Ledger.spend` needs from a calibrated private step (all public parameters).

    ``event`` is the step's whole dp-accounting event (or ``None`` when ``stages`` are given; the
    event is then their composition); ``delta`` the delta the charge is computed at; ``sampling``
    one of ``none | poisson | partition``; ``parameters`` JSON-ready public parameters.
    """

    mechanism: str
    event: dp_event.DpEvent | None
    stages: Sequence[Stage]
    delta: float
    sampling: str
    parameters: dict[str, Any]


@dataclass
class SpendStep:
    """The handle a ``with ledger.spend(...)`` block gets: set what the step produced."""

    charge: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    source_fingerprint: str | None = None
    #: set by a block that ends without raising but did not finish its work (recorded as ``failed``)
    failed: bool = False


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def fsum(values: Sequence[float]) -> float:
    """Exact sum of floats (via fractions), rounded once to the nearest float."""
    return float(sum((Fraction(v) for v in values), Fraction(0)))


def _check_no_secret_seeds(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if _SECRET_SEED_KEY.search(str(key)) and value not in (None, "withheld"):
                raise ValueError(
                    f"{where}: key {key!r} looks like the seed of privacy noise; such seeds are never "
                    "written to a ledger (write 'withheld' or leave it out)"
                )
            _check_no_secret_seeds(value, where)
    elif isinstance(obj, list):
        for value in obj:
            _check_no_secret_seeds(value, where)


def _json_ready(obj: Any, where: str) -> Any:
    """Round-trip through JSON so that stored values are plain and finite."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be JSON-serialisable with finite numbers: {exc}") from exc


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class SpendingMixin:
    """``spend`` written once over ``charge`` and ``complete`` (shared by :class:`Ledger` and ``LedgerFile``)."""

    def charge(self, **kwargs: Any) -> dict[str, Any]:  # pragma: no cover - provided by the class
        raise NotImplementedError

    def complete(self, charge_entry: dict[str, Any] | int, **kwargs: Any) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def require_available(self, budget: PrivacyBudget) -> None:
        """Refuse a whole call up front (before anything is read) when ``budget`` does not fit.

        Raises :class:`BudgetExceededError` naming only public numbers; changes nothing.
        """
        remaining_eps, remaining_delta = self.remaining  # type: ignore[attr-defined]
        if budget.epsilon > remaining_eps * (1 + 1e-12) or budget.delta > remaining_delta * (1 + 1e-12):
            raise BudgetExceededError(
                f"this call needs epsilon={budget.epsilon:g}, delta={budget.delta:g} but the ledger has only "
                f"epsilon={remaining_eps:.6g}, delta={remaining_delta:.3g} left; nothing was read or spent",
                (budget.epsilon, budget.delta),
                (remaining_eps, remaining_delta),
            )

    @contextmanager
    def spend(
        self,
        plan: PrivatePlan,
        *,
        operation: str,
        provenance: dict[str, Any] | None = None,
        limit: PrivacyBudget | None = None,
    ) -> Iterator[SpendStep]:
        """Charge ``plan`` **before** the block reads private data; record how the block ended.

        Raises :class:`BudgetExceededError` (ledger unchanged, block not run) when the charge does
        not fit. Once the block has started, the charge is final: on normal exit a ``completed``
        completion is appended with ``step.outputs`` / ``step.source_fingerprint``; on an exception
        a ``failed`` completion naming only the exception's type (its message may hold private
        data) is appended and the exception re-raised. Nothing is ever refunded.
        """
        stages = list(getattr(plan, "stages", None) or [])
        entry = self.charge(
            operation=operation,
            mechanism=plan.mechanism,
            delta=plan.delta,
            event=None if stages else plan.event,
            stages=stages or None,
            sampling=plan.sampling,
            parameters=dict(plan.parameters),
            provenance=provenance,
            limit=limit,
        )
        step = SpendStep(charge=entry)
        try:
            yield step
        except BaseException as exc:
            self.complete(entry, status="failed", outputs={"error_type": type(exc).__name__})
            raise
        self.complete(
            entry,
            source_fingerprint=step.source_fingerprint,
            outputs=step.outputs,
            status="failed" if step.failed else "completed",
        )


class Ledger(SpendingMixin):
    """An in-memory privacy ledger (see the module docstring). Not thread-safe; for a ledger file
    shared between processes use :class:`dpsynth.accounting.ledger_file.LedgerFile`.

    ``signer``: :data:`OWNER` (the data owner's key, loaded when the first entry is appended), a
    :class:`~dpsynth.accounting.signing.Signer`, or ``None`` for an unsigned ledger (which
    ``dpsynth ledger verify`` reports as "integrity: unsigned", never as a pass).
    """

    def __init__(self, doc: dict[str, Any], signer: Signer | str | None = OWNER):
        self._doc = doc
        self._signer_spec = signer
        self._signer: Signer | None = signer if isinstance(signer, Signer) else None

    # ------------------------------------------------------------------ creation / loading
    @classmethod
    def create(
        cls,
        budget: PrivacyBudget,
        *,
        privacy_unit: str,
        source_name: str,
        neighbouring_relation: str = ADD_OR_REMOVE_ONE,
        signer: Signer | str | None = OWNER,
    ) -> "Ledger":
        """A new, empty ledger for one source dataset and privacy unit, signed by ``signer``."""
        if not isinstance(budget, PrivacyBudget):
            raise TypeError("budget must be a PrivacyBudget")
        if neighbouring_relation != ADD_OR_REMOVE_ONE:
            raise ValueError(
                "dpsynth ledgers record every event under add-or-remove-one; a replace-one proof must "
                "double the sensitivity inside its event (dp-accounting's RDP accountant ignores "
                "REPLACE_ONE for Gaussian events)"
            )
        if not privacy_unit or not source_name:
            raise ValueError("privacy_unit and source_name must be non-empty")
        ledger = cls({}, signer)
        resolved = ledger._resolve_signer() if signer is not None else None
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "ledger_id": str(uuid.uuid4()),
            "created": utc_now(),
            "budget": {"epsilon": budget.epsilon, "delta": budget.delta, "composition_rule": COMPOSITION_RULE},
            "source": {
                "name": str(source_name),
                "privacy_unit": str(privacy_unit),
                "neighbouring_relation": neighbouring_relation,
            },
            "signer": resolved.describe() if resolved is not None else None,
            "entries": [],
        }
        doc["header_hash"] = header_hash(doc)
        doc["header_signature"] = (
            resolved.sign(signed_message("header", doc["ledger_id"], doc["header_hash"])) if resolved else None
        )
        doc["head_hash"] = doc["header_hash"]
        ledger._doc = doc
        ledger._sign_head()
        return ledger

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, verify: bool = True, signer: Signer | str | None = OWNER) -> "Ledger":
        """Build from a parsed document; with ``verify`` (default) refuse a broken or tampered one."""
        doc = copy.deepcopy(doc)
        if verify:
            report = verify_document(doc)
            if not report.ok:
                raise LedgerFormatError("ledger failed verification: " + "; ".join(report.problems))
        return cls(doc, signer)

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, signer: Signer | str | None = OWNER) -> "Ledger":
        """Load a ledger file, verifying its canonical form, hash chain, signatures and charges."""
        text = Path(path).read_text(encoding="utf-8")
        if verify:
            report = verify_text(text)
            if not report.ok:
                raise LedgerFormatError(f"ledger {path} failed verification: " + "; ".join(report.problems))
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LedgerFormatError(f"ledger {path} is not valid JSON: {exc}") from exc
        return cls(doc, signer)

    # ------------------------------------------------------------------ signing
    def _resolve_signer(self) -> Signer | None:
        if self._signer is None and self._signer_spec == OWNER:
            self._signer = Signer.owner()
        return self._signer

    @property
    def signer_key_id(self) -> str | None:
        """The key id named in the header (``None`` for an unsigned ledger)."""
        signer = self._doc.get("signer")
        return signer.get("key_id") if isinstance(signer, dict) else None

    def _signer_for_append(self) -> Signer | None:
        named = self._doc.get("signer")
        if named is None:
            return None  # an unsigned ledger stays unsigned
        signer = self._resolve_signer() if self._signer_spec is not None else None
        if signer is None or signer.public_key_hex != named.get("public_key"):
            have = signer.key_id if signer is not None else "none"
            raise LedgerSigningError(
                f"this ledger is signed by {named.get('key_id')}; the signing key here is {have}: only the "
                "ledger's key holder can append to it"
            )
        return signer

    def _sign_head(self) -> None:
        signer = self._signer if self._doc.get("signer") is not None else None
        doc = self._doc
        doc["head_signature"] = (
            signer.sign(signed_message("head", doc["ledger_id"], doc["head_hash"], len(doc["entries"])))
            if signer is not None
            else None
        )

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._doc)

    def to_json(self) -> str:
        return ledger_text(self._doc)

    def save(self, path: str | Path) -> Path:
        """Write the ledger atomically (temp file + rename)."""
        return atomic_write_text(Path(path), self.to_json())

    def copy(self) -> "Ledger":
        twin = Ledger(copy.deepcopy(self._doc), self._signer_spec)
        twin._signer = self._signer
        return twin

    @property
    def ledger_id(self) -> str:
        return self._doc["ledger_id"]

    @property
    def budget(self) -> PrivacyBudget:
        b = self._doc["budget"]
        return PrivacyBudget(b["epsilon"], b["delta"])

    @property
    def privacy_unit(self) -> str:
        return self._doc["source"]["privacy_unit"]

    @property
    def source_name(self) -> str:
        return self._doc["source"]["name"]

    @property
    def neighbouring_relation(self) -> str:
        return self._doc["source"]["neighbouring_relation"]

    @property
    def head_hash(self) -> str:
        return self._doc["head_hash"]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._doc["entries"])

    def charges(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "charge"]

    @property
    def epsilon_spent(self) -> float:
        return fsum([e["charge"]["epsilon"] for e in self._doc["entries"] if e["kind"] == "charge"])

    @property
    def delta_spent(self) -> float:
        return fsum([e["charge"]["delta"] for e in self._doc["entries"] if e["kind"] == "charge"])

    @property
    def remaining(self) -> tuple[float, float]:
        """``(epsilon, delta)`` still available, rounded down."""
        b = self._doc["budget"]
        eps = Fraction(b["epsilon"]) - sum((Fraction(e["charge"]["epsilon"]) for e in self._charge_entries()), Fraction(0))
        dlt = Fraction(b["delta"]) - sum((Fraction(e["charge"]["delta"]) for e in self._charge_entries()), Fraction(0))
        return (max(0.0, _float_down(eps)), max(0.0, _float_down(dlt)))

    def _charge_entries(self) -> list[dict[str, Any]]:
        return [e for e in self._doc["entries"] if e["kind"] == "charge"]

    # ------------------------------------------------------------------ spending
    def quote(
        self,
        *,
        delta: float,
        event: dp_event.DpEvent | None = None,
        stages: Sequence[Stage] | None = None,
    ) -> Charge:
        """The charge a step would make (public parameters only); does not change the ledger."""
        if (event is None) == (not stages):
            raise ValueError("give exactly one of event= or stages=")
        if stages:
            event = composed_event(stages)
        assert event is not None
        return compute_charge(event, delta, stages)

    def charge(
        self,
        *,
        operation: str,
        mechanism: str,
        delta: float,
        event: dp_event.DpEvent | None = None,
        stages: Sequence[Stage] | None = None,
        sampling: str = "none",
        parameters: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        limit: PrivacyBudget | None = None,
    ) -> dict[str, Any]:
        """Charge a DP step **before** it reads any private record.

        The charge is computed from the event alone (public parameters). If it does not fit the
        remaining ledger budget -- or the call's own ``limit`` -- :class:`BudgetExceededError` is
        raised and the ledger is left exactly as it was. Otherwise a ``charge`` entry is appended and
        returned; call :meth:`complete` once the step has run.
        """
        if sampling not in SAMPLING_SCHEMES:
            raise ValueError(f"sampling must be one of {SAMPLING_SCHEMES}, got {sampling!r}")
        parameters = _json_ready(parameters or {}, "parameters")
        provenance = _json_ready(provenance or {}, "provenance")
        _check_no_secret_seeds(parameters, "parameters")
        _check_no_secret_seeds(provenance, "provenance")
        if (event is None) == (not stages):
            raise ValueError("give exactly one of event= or stages=")
        if stages:
            event = composed_event(stages)
        assert event is not None
        if not (0 <= delta < 1):
            raise ValueError(f"delta must be in [0, 1), got {delta!r}")
        for part in [event] + [s.event for s in stages or []]:  # what the file could not load back is refused now
            event_from_json(event_to_json(part))
        charge = compute_charge(event, delta, stages)
        if not math.isfinite(charge.epsilon):
            raise BudgetExceededError(
                f"{operation} has an unbounded privacy loss (epsilon=inf at delta={delta:g}); refused, nothing was read",
                (charge.epsilon, charge.delta),
                self.remaining,
            )

        spent_eps = [e["charge"]["epsilon"] for e in self._charge_entries()]
        spent_dlt = [e["charge"]["delta"] for e in self._charge_entries()]
        budget = self._doc["budget"]
        total_eps = sum((Fraction(v) for v in spent_eps), Fraction(0)) + Fraction(charge.epsilon)
        total_dlt = sum((Fraction(v) for v in spent_dlt), Fraction(0)) + Fraction(charge.delta)
        remaining = self.remaining
        if limit is not None and (charge.epsilon > limit.epsilon or charge.delta > limit.delta):
            raise BudgetExceededError(
                f"{operation} would spend epsilon={charge.epsilon:.6g}, delta={charge.delta:.3g}, more than "
                f"this call's budget epsilon={limit.epsilon:g}, delta={limit.delta:g}; nothing was read or spent",
                (charge.epsilon, charge.delta),
                (limit.epsilon, limit.delta),
            )
        if total_eps > Fraction(budget["epsilon"]) or total_dlt > Fraction(budget["delta"]):
            raise BudgetExceededError(
                f"{operation} would spend epsilon={charge.epsilon:.6g}, delta={charge.delta:.3g}, but the ledger "
                f"has only epsilon={remaining[0]:.6g}, delta={remaining[1]:.3g} left of its budget "
                f"(epsilon={budget['epsilon']:g}, delta={budget['delta']:g}); nothing was read or spent",
                (charge.epsilon, charge.delta),
                remaining,
            )
        entry: dict[str, Any] = {
            "kind": "charge",
            "operation": str(operation),
            "mechanism": str(mechanism),
            "event": event_to_json(event),
            "stages": [
                {"name": s.name, "event": event_to_json(s.event), "delta": float(s.delta)} for s in (stages or [])
            ],
            "neighbouring_relation": self.neighbouring_relation,
            "privacy_unit": self.privacy_unit,
            "sampling": sampling,
            "parameters": parameters,
            "charge": {
                "epsilon": charge.epsilon,
                "delta": charge.delta,
                # bounds that are infinite at this delta (e.g. RDP at delta=0) are not stored
                "by_accountant": {k: v for k, v in charge.by_accountant.items() if math.isfinite(v)},
                "accountant": charge.accountant,
            },
            "cumulative": {"epsilon": float(total_eps), "delta": float(total_dlt), "rule": COMPOSITION_RULE},
            "params_fixed_before_data": True,
            "provenance": provenance,
            "versions": dependency_versions(),
        }
        entry["event_sha256"] = sha256_hex(entry["event"])
        return self._append(entry)

    def complete(
        self,
        charge_entry: dict[str, Any] | int,
        *,
        source_fingerprint: str | None = None,
        outputs: dict[str, Any] | None = None,
        status: str = "completed",
    ) -> dict[str, Any]:
        """Record that a charged step ran (``completed``) or broke off (``failed``).

        Its spend is final either way: no refunds after data access.
        """
        if status not in ("completed", "failed"):
            raise ValueError(f"status must be 'completed' or 'failed', got {status!r}")
        seq = charge_entry if isinstance(charge_entry, int) else charge_entry["seq"]
        target = [e for e in self._doc["entries"] if e["seq"] == seq and e["kind"] == "charge"]
        if not target:
            raise ValueError(f"no charge entry with seq={seq}")
        outputs = _json_ready(outputs or {}, "outputs")
        return self._append(
            {
                "kind": "completion",
                "completes": seq,
                "status": status,
                "source_fingerprint": source_fingerprint,
                "outputs": outputs,
            }
        )

    def record_postprocessing(
        self,
        *,
        operation: str,
        description: str,
        parameters: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a free step on DP outputs (post-processing): a ``NoOpDpEvent`` with zero charge."""
        parameters = _json_ready(parameters or {}, "parameters")
        provenance = _json_ready(provenance or {}, "provenance")
        _check_no_secret_seeds(parameters, "parameters")
        _check_no_secret_seeds(provenance, "provenance")
        event = event_to_json(dp_event.NoOpDpEvent())
        return self._append(
            {
                "kind": "postprocessing",
                "operation": str(operation),
                "description": str(description),
                "event": event,
                "event_sha256": sha256_hex(event),
                "parameters": parameters,
                "provenance": provenance,
                "charge": {"epsilon": 0.0, "delta": 0.0},
            }
        )

    def record_release(
        self, *, data_name: str, data_sha256: str, card_sha256: str, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Bind the released files: the SHA-256 of the data file and of the card written with it.

        ``dpsynth ledger verify`` checks the **last** release entry against the files beside the
        ledger, so a swapped data file or card fails. A later entry (e.g. after ``dpsynth evaluate``
        rewrote the card) supersedes an earlier one. A partitioned release (a directory of part
        files, :mod:`dpsynth.release_parts`) also records its ``manifest`` (each part's name, size,
        rows and SHA-256); ``data_sha256`` is then the SHA-256 of the manifest's canonical JSON.
        """
        for name, digest in (("data_sha256", data_sha256), ("card_sha256", card_sha256)):
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise ValueError(f"{name} must be 64 lowercase hex digits")
        entry = {"kind": "release", "data_name": str(data_name), "data_sha256": data_sha256, "card_sha256": card_sha256}
        if manifest is not None:
            if sha256_hex(manifest) != data_sha256:
                raise ValueError("data_sha256 must be the SHA-256 of the manifest of a partitioned release")
            entry["manifest"] = copy.deepcopy(manifest)
        return self._append(entry)

    def record_real_records(self, *, count: int, source_fingerprint: str | None, note: str) -> dict[str, Any]:
        """Mark the output as holding ``count`` real records verbatim: it is **not** a DP release.

        ``verify`` and ``show`` then report "contains real records: not differentially private".
        ``count`` must be a public number (e.g. fixed by a public ratio), never a data-dependent one.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        return self._append(
            {
                "kind": "real-records-included",
                "count": int(count),
                "source_fingerprint": source_fingerprint,
                "note": str(note),
                "differentially_private": False,
            }
        )

    @property
    def contains_real_records(self) -> bool:
        return any(e["kind"] == "real-records-included" for e in self._doc["entries"])

    def last_release(self) -> dict[str, Any] | None:
        releases = [e for e in self._doc["entries"] if e["kind"] == "release"]
        return copy.deepcopy(releases[-1]) if releases else None

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        signer = self._signer_for_append()
        entries = self._doc["entries"]
        entry = dict(entry)
        entry["seq"] = len(entries)
        entry["time"] = utc_now()
        entry["prev_hash"] = self._doc["head_hash"]
        entry["hash"] = entry_hash(entry)
        entry["signature"] = (
            signer.sign(signed_message("entry", self._doc["ledger_id"], entry["hash"])) if signer is not None else None
        )
        entries.append(entry)
        self._doc["head_hash"] = entry["hash"]
        self._sign_head()
        return copy.deepcopy(entry)

    def source_fingerprints(self) -> list[str]:
        return [
            e["source_fingerprint"]
            for e in self._doc["entries"]
            if e["kind"] in ("completion", "real-records-included") and e.get("source_fingerprint")
        ]


def _float_down(x: Fraction) -> float:
    """The largest float <= x."""
    f = float(x)
    if Fraction(f) > x:
        f = math.nextafter(f, -math.inf)
    return f
