"""The one base class of every error dpsynth raises on purpose.

``except dpsynth.errors.DpsynthError`` catches every refusal, bad input and budget error that the
library raises by design (a bug still surfaces as its own Python exception). Each subclass keeps
its builtin parent too (``ValueError``, ``FileExistsError`` ...) so older ``except`` clauses work.

The CLI maps these to exit codes in one place (:mod:`dpsynth.cli.common`): every ``DpsynthError``
is a clean message and exit code 2.

Privacy rule for every message: an error raised **before** a charge must not carry anything derived
from private data (counts, values, which rows failed); only public inputs (column names given in
metadata, file names, arguments).
"""

from __future__ import annotations


class DpsynthError(Exception):
    """Base class of every error dpsynth raises on purpose."""


class DpsynthWarning(UserWarning):
    """Base class of every warning dpsynth emits."""
