"""The accounting names the tabular code uses, imported in one place from :mod:`dpsynth.accounting`."""

from __future__ import annotations

from dpsynth.accounting import (
    BudgetExceededError,
    ExponentialMechanismDpEvent,
    InvalidBudgetError,
    Ledger,
    PrivacyBudget,
    Stage,
    composed_event,
    compute_charge,
    epsilon_by_accountant,
    exponential_epsilon_per_step,
    fingerprint_dataframe,
    gaussian_noise_multiplier,
    privacy_rng,
    zcdp_rho,
)

__all__ = [
    "BudgetExceededError",
    "ExponentialMechanismDpEvent",
    "InvalidBudgetError",
    "Ledger",
    "PrivacyBudget",
    "Stage",
    "composed_event",
    "compute_charge",
    "epsilon_by_accountant",
    "exponential_epsilon_per_step",
    "fingerprint_dataframe",
    "gaussian_noise_multiplier",
    "privacy_rng",
    "zcdp_rho",
]
