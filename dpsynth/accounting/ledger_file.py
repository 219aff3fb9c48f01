"""A ledger file shared between processes: every update is load -> check -> write under a lock.

Two processes spending from one ledger file cannot double-spend: each charge holds an exclusive
file lock (``<ledger>.lock``) while it re-reads and verifies the file, checks the budget, appends,
and atomically replaces the file. :class:`LedgerFile` offers the same spending protocol as
:class:`~dpsynth.accounting.ledger.Ledger` (``charge``, ``complete``, ``spend``,
``record_postprocessing``, ``remaining``, ``budget`` ...), so either can back a library call.

A budget is only as good as the file it is read from: a ledger edited to a larger budget, its
hashes recomputed and its signatures dropped is intact (``verify`` calls it "unsigned"), so a
handle with a signer (the default: the owner's key) refuses, on every read, a file that this key
did not sign -- unsigned, or signed by another key (:class:`UntrustedBudgetLedgerError`).
``signer=None`` opts out (an unsigned ledger the caller vouches for). Not covered: whoever holds
the owner's key can write any ledger, and restoring an older copy signed by the owner's key (a
rollback) is not detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from dpsynth.accounting.budget import PrivacyBudget
from dpsynth.accounting.ledger import OWNER, Ledger, SpendingMixin
from dpsynth.accounting.serialization import LedgerFormatError
from dpsynth.accounting.signing import Signer


class UntrustedBudgetLedgerError(LedgerFormatError):
    """A budget ledger file is intact but not signed by the key this handle spends with."""


class LedgerFile(SpendingMixin):
    """Process-safe access to a ledger on disk, with the same spending methods as :class:`Ledger`."""

    def __init__(self, path: str | Path, timeout: float = 60.0, signer: Signer | str | None = OWNER):
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock", timeout=timeout)
        self._signer = signer

    @classmethod
    def create(
        cls,
        path: str | Path,
        budget: PrivacyBudget,
        *,
        privacy_unit: str,
        source_name: str,
        signer: Signer | str | None = OWNER,
    ) -> "LedgerFile":
        """Create a new ledger file; refuses to overwrite an existing one."""
        handle = cls(path, signer=signer)
        with handle._lock:
            if handle.path.exists():
                raise FileExistsError(f"{handle.path} already exists; refusing to overwrite a ledger")
            Ledger.create(budget, privacy_unit=privacy_unit, source_name=source_name, signer=signer).save(handle.path)
        return handle

    def load(self) -> Ledger:
        """A verified in-memory snapshot of the file (read under the lock)."""
        with self._lock:
            return self._read()

    def _read(self) -> Ledger:
        """The file, verified, and (unless this handle has no signer) signed by this handle's key."""
        ledger = Ledger.load(self.path, signer=self._signer)
        if self._signer is None:
            return ledger
        expected = self._signer if isinstance(self._signer, Signer) else Signer.owner()
        named = ledger.to_dict().get("signer")
        if not isinstance(named, dict):
            raise UntrustedBudgetLedgerError(
                f"budget ledger {self.path} is unsigned: a budget ledger must be signed by the owner's key "
                f"({expected.key_id}); an unsigned file could have been edited (budget raised, hashes recomputed)"
            )
        if named.get("public_key") != expected.public_key_hex:
            raise UntrustedBudgetLedgerError(
                f"budget ledger {self.path} is signed by {named.get('key_id')}, not by the owner's key "
                f"({expected.key_id}): refusing to spend from it"
            )
        return ledger

    def _update(self, method: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            ledger = self._read()
            entry = getattr(ledger, method)(**kwargs)
            ledger.save(self.path)
            return entry

    def charge(self, **kwargs: Any) -> dict[str, Any]:
        """:meth:`Ledger.charge` under the file lock (raises before writing anything if over budget)."""
        return self._update("charge", **kwargs)

    def complete(self, charge_entry: dict[str, Any] | int, **kwargs: Any) -> dict[str, Any]:
        return self._update("complete", charge_entry=charge_entry, **kwargs)

    def record_postprocessing(self, **kwargs: Any) -> dict[str, Any]:
        return self._update("record_postprocessing", **kwargs)

    def record_release(self, **kwargs: Any) -> dict[str, Any]:
        return self._update("record_release", **kwargs)

    def record_real_records(self, **kwargs: Any) -> dict[str, Any]:
        return self._update("record_real_records", **kwargs)

    # read-only views, each from a fresh verified snapshot
    @property
    def budget(self) -> PrivacyBudget:
        return self.load().budget

    @property
    def remaining(self) -> tuple[float, float]:
        return self.load().remaining

    @property
    def epsilon_spent(self) -> float:
        return self.load().epsilon_spent

    @property
    def delta_spent(self) -> float:
        return self.load().delta_spent

    @property
    def privacy_unit(self) -> str:
        return self.load().privacy_unit

    @property
    def ledger_id(self) -> str:
        return self.load().ledger_id
