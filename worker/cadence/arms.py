"""Experiment arms (issue 17): which arm of a cadence's experiment a deal is drawn into. Pure."""

from __future__ import annotations

import hashlib

from worker.settings.experiments import Experiment


def assign_arm(connection: str, deal_id: str, experiment: Experiment) -> str:
    """The arm a deal is drawn into: a hash of (connection, deal id, experiment id) read as a
    point of [0, 100), then the arms' weights laid end to end (holdout, base, the variants as
    written). The same deal, connection and id always give the same arm; a new id draws
    every deal again, independently of the last draw."""
    arms = experiment.arms()
    point = int.from_bytes(hashlib.blake2b(
        f"{connection}\x00{deal_id}\x00{experiment.id}".encode(), digest_size=8).digest(),
        "big") / 2.0 ** 64 * sum(w for _, w in arms)
    edge = 0.0
    for name, weight in arms:
        edge += weight
        if point < edge:
            return name
    return arms[-1][0]
