"""The ``dpsynth`` command line: one Typer app with a sub-command group per user path.

* ``dpsynth ledger ...``   -- inspect / verify / recompute / compose ledgers (:mod:`.ledger`)
* ``dpsynth tabular ...``  -- DP synthesis of CSV tables (:mod:`.tabular`)
* ``dpsynth text ...``     -- DP synthetic text (:mod:`.text`)
* ``dpsynth budget init | show`` -- one budget per data source, across releases (:mod:`.budget`)
* ``dpsynth keys show-public`` -- the owner's ledger-signing public key (:mod:`.keys`)
* ``dpsynth evaluate`` / ``dpsynth mix`` -- validation of released data (:mod:`.evaluate`)
"""

from __future__ import annotations

import typer

from dpsynth.cli import budget as _budget
from dpsynth.cli import evaluate as _evaluate
from dpsynth.cli import keys as _keys
from dpsynth.cli import ledger as _ledger
from dpsynth.cli import tabular as _tabular
from dpsynth.cli import text as _text

app = typer.Typer(
    name="dpsynth",
    help="Differentially private synthetic data with an auditable privacy ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_ledger.app, name="ledger")
app.add_typer(_tabular.app, name="tabular")
app.add_typer(_text.app, name="text")
app.add_typer(_keys.app, name="keys")
app.add_typer(_budget.app, name="budget")
_evaluate.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
