"""What a sandbox label costs and how long it takes: a fixed, deterministic table.

Each parcel pays its service's base price for the first kilogram plus a per-kilogram
surcharge for every started kilogram above it, which is enough shape (services differ,
heavier parcels cost more) for routing rules and benchmarks to mean something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

__all__ = ["MAX_PARCEL_WEIGHT_G", "Tariff"]

# A parcel heavier than this is refused, as real parcel carriers refuse freight.
MAX_PARCEL_WEIGHT_G = 70_000

_CENT = Decimal("0.01")


@attrs.frozen
class _Price:
    base: Decimal
    per_kg: Decimal
    days: int


_BUILT_IN: dict[str, _Price] = {
    "economy": _Price(Decimal("4.90"), Decimal("0.50"), 5),
    "standard": _Price(Decimal("6.90"), Decimal("0.80"), 3),
    "express": _Price(Decimal("14.90"), Decimal("1.50"), 1),
}
_CROSS_BORDER_DAYS = 2


@attrs.frozen
class Tariff:
    """The built-in table, with the merchant's ``costs`` overriding base prices."""

    prices: Mapping[str, _Price]

    @classmethod
    def with_overrides(cls, costs: Mapping[str, Decimal]) -> Tariff:
        prices = dict(_BUILT_IN)
        for service, base in costs.items():
            prices[service] = attrs.evolve(prices[service], base=Decimal(base))
        return cls(prices)

    def cost(self, service: str, weights_g: Iterable[int]) -> Decimal:
        price = self.prices[service]
        total = Decimal(0)
        for weight_g in weights_g:
            started_kg = max(1, -(-weight_g // 1000))
            total += price.base + price.per_kg * (started_kg - 1)
        return total.quantize(_CENT)

    def days(self, service: str, origin: str, destination: str) -> int:
        extra = 0 if origin == destination else _CROSS_BORDER_DAYS
        return self.prices[service].days + extra
