"""Event serialisation through the whitelist, and accountants that fail closed."""

from __future__ import annotations

import json

import pytest
from dp_accounting import dp_event, privacy_accountant
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from dpsynth.accounting import (
    ExponentialMechanismDpEvent,
    Ledger,
    LedgerFormatError,
    PrivacyBudget,
    PureDpEvent,
    UnsupportedEventError,
    compute_charge,
    event_from_json,
    event_to_json,
)
from dpsynth.accounting.serialization import canonical_json, sha256_hex

DPSGD = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(256 / 60000, dp_event.GaussianDpEvent(1.1)), 14062)
EVENTS = [
    dp_event.GaussianDpEvent(1.0),
    dp_event.LaplaceDpEvent(0.5),
    dp_event.ZCDpEvent(0.125),
    DPSGD,
    dp_event.ComposedDpEvent([DPSGD, dp_event.ZCDpEvent(0.125), ExponentialMechanismDpEvent(0.3)]),
    dp_event.SelfComposedDpEvent(PureDpEvent(0.1), 7),
    dp_event.NoOpDpEvent(),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip_is_exact(event):
    obj = event_to_json(event)
    again = event_from_json(json.loads(canonical_json(obj)))
    assert again == event
    assert sha256_hex(event_to_json(again)) == sha256_hex(obj)


def test_reference_serialisation_shape():
    obj = event_to_json(dp_event.ComposedDpEvent([DPSGD, dp_event.ZCDpEvent(0.125)]))
    assert canonical_json(obj) == (
        '{"events":[{"count":14062,"event":{"event":{"noise_multiplier":1.1,"type":"GaussianDpEvent"},'
        '"sampling_probability":0.004266666666666667,"type":"PoissonSampledDpEvent"},"type":"SelfComposedDpEvent"},'
        '{"rho":0.125,"type":"ZCDpEvent","xi":0.0}],"type":"ComposedDpEvent"}'
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "os.system", "command": "rm -rf /"},
        {"type": "SampledWithReplacementDpEvent", "source_dataset_size": 10, "sample_size": 1, "event": {"type": "NoOpDpEvent"}},
        {"type": "GaussianDpEvent", "noise_multiplier": 1.0, "module_name": "os"},
        {"type": "GaussianDpEvent", "noise_multiplier": "1.0"},
        {"type": "GaussianDpEvent", "noise_multiplier": -1.0},
        {"type": "SelfComposedDpEvent", "event": 3, "count": 2},
        {"type": "PoissonSampledDpEvent", "sampling_probability": 1.5, "event": {"type": "GaussianDpEvent", "noise_multiplier": 1.0}},
        ["GaussianDpEvent", 1.0],
    ],
)
def test_unknown_or_malformed_events_are_refused(bad):
    with pytest.raises(LedgerFormatError):
        event_from_json(bad)


def test_unsupported_event_is_refused_not_counted_as_zero():
    with pytest.raises(UnsupportedEventError):
        compute_charge(dp_event.UnsupportedDpEvent(), 1e-5)
    ledger = Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit="row", source_name="s")
    before = ledger.to_json()
    with pytest.raises((UnsupportedEventError, LedgerFormatError)):
        ledger.charge(operation="op", mechanism="m", event=dp_event.UnsupportedDpEvent(), delta=1e-6)
    assert ledger.to_json() == before


def test_stock_accountants_do_not_understand_our_events():
    # the extension fails closed: dp-accounting's own accountants refuse what they cannot account
    for acc in (rdp_privacy_accountant.RdpAccountant(), pld_privacy_accountant.PLDAccountant()):
        assert not acc.supports(ExponentialMechanismDpEvent(1.0))
        assert not acc.supports(PureDpEvent(1.0))


def test_replace_one_sensitivity_bug_is_kept_out_of_ledgers():
    rel = privacy_accountant.NeighboringRelation.REPLACE_ONE
    rdp = rdp_privacy_accountant.RdpAccountant(neighboring_relation=rel)
    pld = pld_privacy_accountant.PLDAccountant(rel)
    rdp.compose(dp_event.GaussianDpEvent(1.0))
    pld.compose(dp_event.GaussianDpEvent(1.0))
    # dp-accounting disagrees with itself by a factor 2 in sensitivity under REPLACE_ONE (issue #378)
    assert pld.get_epsilon(1e-5) > 2 * rdp.get_epsilon(1e-5)
    with pytest.raises(ValueError, match="add-or-remove-one"):
        Ledger.create(PrivacyBudget(1.0, 1e-5), privacy_unit="row", source_name="s", neighbouring_relation="replace_one")
