"""A ledger file shared between processes: every update is load -> check -> write under a lock.

Two processes spending from one ledger file cannot double-spend: each charge holds an exclusive
file lock (``<ledger>.lock``) while it re-reads and verifies the file, checks the budget, appends,
and atomically replaces the file. :class:`LedgerFile` offers the same spending protocol as
:class:`~dpsynth.accounting.ledger.Ledger` (``charge``, ``complete``, ``spend``,
``record_postprocessing``, ``remaining``, ``budget`` ...), so either can back a library call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filelock import FileLock

from dpsynth.accounting.budget import PrivacyBudget
from dpsynth.accounting.ledger import OWNER, Ledger, SpendingMixin
from dpsynth.accounting.signing import Signer


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
            return Ledger.load(self.path, signer=self._signer)

    def _update(self, method: str, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            ledger = Ledger.load(self.path, signer=self._signer)
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
