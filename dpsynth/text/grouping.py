"""Data-independent partition of private texts into groups by a keyed hash.

Rule: text ``x`` (with label ``l``, or no label) goes to group
``BLAKE2b(key, l || x) mod G_l`` among the ``G_l`` groups of its label, where ``G_l`` (the number
of outputs for label ``l``) is public and ``key`` is 32 secret random bytes drawn from OS
entropy for every call and never stored or returned.

Why this is the right kind of rule for the privacy proof (:mod:`dpsynth.text.privacy`):

* a text's group depends only on the text itself, its label and the key -- not on the other
  texts, their number, or their order.  Adding or removing one text therefore leaves every
  other text in the same group, so exactly one group's member multiset changes, by exactly one
  member (parallel composition applies across groups);
* there is no cap on the members of a group, so no text can ever evict another (a cap would
  turn "add one" into "add one, drop one", doubling the sensitivity);
* the key is secret and fresh, so which texts share a group is unknown to an adversary and is
  not reproducible from anything released (the ``seed`` argument does NOT influence it).

The group count is public; a group's actual size is data-dependent and is never released.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

KEY_BYTES = 32


def fresh_key() -> bytes:
    """32 random bytes from the OS CSPRNG (one per call; never persisted)."""
    return os.urandom(KEY_BYTES)


def keyed_group_index(text: str, num_groups: int, key: bytes, label: str | None = None) -> int:
    """Group index in ``[0, num_groups)`` of ``text`` under the keyed hash (label-aware)."""
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    hasher = hashlib.blake2b(key=key, digest_size=16)
    if label is not None:
        encoded = label.encode("utf-8")
        hasher.update(len(encoded).to_bytes(8, "little"))
        hasher.update(encoded)
    else:
        hasher.update(b"\xff" * 8)
    hasher.update(text.encode("utf-8"))
    return int.from_bytes(hasher.digest(), "little") % num_groups


@dataclass(frozen=True)
class Group:
    """One group: the public label it generates for and its private member texts."""

    label: str | None
    members: tuple[str, ...]


def partition_texts(
    texts: Sequence[str],
    groups_per_label: Mapping[Hashable, int],
    key: bytes,
    labels: Sequence[str] | None = None,
) -> list[Group]:
    """Partition ``texts`` into disjoint groups with :func:`keyed_group_index`.

    ``groups_per_label`` maps each PUBLIC label (or ``None`` when unlabelled) to its public number
    of groups.  Returns the groups label by label in the mapping's order, group index ascending;
    the list length is ``sum(groups_per_label.values())`` whatever the data (empty groups are
    kept: they generate from the public prompt alone).  Members of a group are in input order
    (the aggregate is a sum, so order does not matter beyond float rounding).

    Raises ``ValueError`` if ``labels`` is given with a different length, or contains a label
    not in ``groups_per_label`` (labels are public metadata declared by the caller). The messages
    name the public label set only: no count, position or private label value.
    """
    if labels is not None and len(labels) != len(texts):
        raise ValueError("labels and texts have different lengths")
    buckets: dict[Hashable, list[list[str]]] = {
        label: [[] for _ in range(count)] for label, count in groups_per_label.items()
    }
    for index, text in enumerate(texts):
        label = None if labels is None else labels[index]
        if label not in buckets:
            raise ValueError(
                f"a text has a label that is not in the declared label set {sorted(map(str, buckets))}"
            )
        group = keyed_group_index(text, len(buckets[label]), key, label=label)
        buckets[label][group].append(text)
    return [
        Group(label=label, members=tuple(members))
        for label, label_groups in buckets.items()
        for members in label_groups
    ]
