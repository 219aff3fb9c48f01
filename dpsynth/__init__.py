"""dpsynth: differentially private synthetic data with an auditable privacy ledger.

Sub-packages:

* :mod:`dpsynth.accounting` -- privacy events, accountants, budgets, the hash-chained ledger.
* :mod:`dpsynth.tabular` -- DP synthesis of tables (marginal methods and DP-SGD models).
* :mod:`dpsynth.text` -- DP synthetic text by private LLM inference.
* :mod:`dpsynth.evaluate` -- utility, diversity, contamination and privacy-audit evaluation.
"""

__version__ = "0.1.0"
