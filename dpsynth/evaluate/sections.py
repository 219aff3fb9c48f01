"""The evaluation report's shared pieces: section flags, constants, JSON safety, sampling.

Every section of a report is a dict built by :func:`section`, which records whether it read real
records (``reads_private_data``: the private training data *or* the real holdout -- both are real
people) and which real ``sources`` it read. Nothing here reads data; it only shapes the report.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: Records per side of a membership audit, unless the caller asks otherwise.
DEFAULT_AUDIT_SIZE = 500
#: Delta the audit's epsilon lower bound uses when the ledger gives none.
DEFAULT_DELTA_FOR_AUDIT = 1e-5
#: Texts per side that are embedded for coverage / MAUVE.
MAX_EMBED = 1000
NOTICE = ("Sections with reads_private_data: true were computed from real records (private training "
          "data or the real holdout) without differential privacy. Do not publish them and do not "
          "use them to steer generation without a ledger entry.")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars made plain and non-finite floats made ``None`` (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def section(reads_private: bool, sources: Sequence[str], **values: Any) -> dict[str, Any]:
    """A report section: ``values`` plus its ``reads_private_data`` flag and real ``sources``."""
    return {**values, "reads_private_data": reads_private, "sources": list(sources)}


def sample_rows(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``n`` rows of ``frame``, drawn without replacement, in their original order."""
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))]


def sample_list(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    """At most ``n`` items of ``items``, drawn without replacement, in their original order."""
    if len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.sort(rng.choice(len(items), size=n, replace=False))]
