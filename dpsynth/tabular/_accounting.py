"""The accounting names the tabular code uses, imported in one place.

Everything comes from :mod:`dpsynth.accounting` (the project's single accounting engine).
"""

from __future__ import annotations

from dpsynth.accounting.accountants import epsilon_by_accountant  # noqa: F401
from dpsynth.accounting.budget import BudgetExceededError, InvalidBudgetError, PrivacyBudget  # noqa: F401
from dpsynth.accounting.calibration import (  # noqa: F401
    exponential_epsilon_per_step,
    gaussian_noise_multiplier,
    zcdp_rho,
)
from dpsynth.accounting.events import ExponentialMechanismDpEvent  # noqa: F401
