"""Privacy accounting: events, accountants, calibration, budgets and the hash-chained ledger.

``dp-accounting`` is the one accounting engine; see ``docs/accounting-api.md`` for how a mechanism
uses this package, and :mod:`dpsynth.accounting.ledger` for the composition rules.
"""

from dpsynth.accounting.accountants import (
    AccountingError,
    Charge,
    Stage,
    UnsupportedEventError,
    composed_event,
    compute_charge,
    epsilon_by_accountant,
    epsilon_profile,
)
from dpsynth.accounting.budget import BudgetExceededError, InvalidBudgetError, PrivacyBudget
from dpsynth.accounting.calibration import (
    CalibrationError,
    dpsgd_noise_multiplier,
    exponential_epsilon_per_step,
    gaussian_noise_multiplier,
    zcdp_rho,
)
from dpsynth.accounting.events import ApproxDpEvent, ExponentialMechanismDpEvent, PureDpEvent
from dpsynth.accounting.fingerprint import fingerprint_bytes, fingerprint_dataframe, fingerprint_texts
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.noise import gaussian_mechanism, laplace_mechanism, privacy_rng
from dpsynth.accounting.ledger_file import LedgerFile
from dpsynth.accounting.serialization import LedgerFormatError, event_from_json, event_to_json
from dpsynth.accounting.verify import VerificationReport, verify_text

__all__ = [
    "AccountingError",
    "ApproxDpEvent",
    "BudgetExceededError",
    "CalibrationError",
    "Charge",
    "ExponentialMechanismDpEvent",
    "InvalidBudgetError",
    "Ledger",
    "LedgerFile",
    "LedgerFormatError",
    "PrivacyBudget",
    "PureDpEvent",
    "Stage",
    "UnsupportedEventError",
    "VerificationReport",
    "composed_event",
    "compute_charge",
    "dpsgd_noise_multiplier",
    "epsilon_by_accountant",
    "epsilon_profile",
    "event_from_json",
    "event_to_json",
    "exponential_epsilon_per_step",
    "fingerprint_bytes",
    "fingerprint_dataframe",
    "fingerprint_texts",
    "gaussian_mechanism",
    "gaussian_noise_multiplier",
    "laplace_mechanism",
    "privacy_rng",
    "verify_text",
    "zcdp_rho",
]
