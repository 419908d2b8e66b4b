"""Which variant a user gets: deterministic, sticky, the same in every process.

SHA-256 of ``"<experiment id>:<phase seed>:<user>"`` gives two independent buckets in
[0, 10000): the first says whether the user is in the experiment at all (below the user
percentage, in hundredths of a percent), the second picks the variant by the variants'
cumulative shares in their order. Nothing here depends on the process (no ``hash()``, no
randomness), so a user gets the same variant from every web process, worker and restart for as
long as the phase's seed and split stay; a canary's next step keeps the seed and only moves the
boundary between control and treatment, so users move one way only (onto the treatment).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

BUCKETS = 10_000
HUNDRED_PERCENT = BUCKETS

T = TypeVar("T")


def basis_points(percentage: Decimal | float | int | str) -> int:
    """A percentage (two decimals at most) in hundredths of a percent: 12.5 → 1250."""
    return int((Decimal(str(percentage)) * 100).to_integral_value())


def buckets(experiment_id: int, seed: str, user: str) -> tuple[int, int]:
    """The user's inclusion bucket and variant bucket, each in [0, BUCKETS)."""
    digest = hashlib.sha256(f"{experiment_id}:{seed}:{user}".encode()).digest()
    return (
        int.from_bytes(digest[:8], "big") % BUCKETS,
        int.from_bytes(digest[8:16], "big") % BUCKETS,
    )


def pick(
    *,
    experiment_id: int,
    seed: str,
    user: str,
    user_basis_points: int,
    arms: Sequence[tuple[T, int]],
) -> T | None:
    """The arm (of ``(arm, share in basis points)``, shares summing to 10000) the user gets, or
    None when the user is outside the experiment's user percentage."""
    included, position = buckets(experiment_id, seed, user)
    if included >= user_basis_points:
        return None
    edge = 0
    for arm, share in arms:
        edge += share
        if position < edge:
            return arm
    return None


@dataclass(frozen=True)
class VariantConfig:
    """A variant as the request hook applies it."""

    id: int
    name: str
    kind: str
    basis_points: int
    provider: str = ""
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str = ""


@dataclass(frozen=True)
class RunningExperiment:
    """A running experiment's current phase: what assigning a user needs."""

    id: int
    name: str
    phase: int
    seed: str
    user_basis_points: int
    variants: tuple[VariantConfig, ...]

    def variant_for(self, user: str) -> VariantConfig | None:
        return pick(
            experiment_id=self.id,
            seed=self.seed,
            user=user,
            user_basis_points=self.user_basis_points,
            arms=[(variant, variant.basis_points) for variant in self.variants],
        )
