"""Routing: which carrier and service a shipment goes with.

The merchant's ``[[routing]]`` rules are tried in order; the first whose destination
country, weight range and fulfilment type match wins, and its ``fallback`` (if any) is the
second candidate, used when the first carrier fails permanently or its circuit is open.
The ``fulfil_select_carrier`` hook gets the candidates and has the last word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import Order, Shipment

__all__ = ["Route", "Rule", "candidates_for"]


@attrs.frozen
class Route:
    carrier: str
    service: str | None = None


@attrs.frozen
class Rule:
    countries: frozenset[str]  # {"*"} matches any destination
    route: Route
    fallback: Route | None = None
    min_weight_g: int | None = None
    max_weight_g: int | None = None
    fulfilment_type: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Rule:
        country = data.get("country", "*")
        countries = frozenset([country] if isinstance(country, str) else country)
        fallback = data.get("fallback")
        return cls(
            countries=countries,
            route=Route(data["carrier"], data.get("service")),
            fallback=Route(fallback["carrier"], fallback.get("service")) if fallback else None,
            min_weight_g=data.get("min_weight_g"),
            max_weight_g=data.get("max_weight_g"),
            fulfilment_type=data.get("fulfilment_type"),
        )

    def matches(self, country: str, weight_g: int, fulfilment_type: str) -> bool:
        return (
            ("*" in self.countries or country in self.countries)
            and (self.min_weight_g is None or weight_g >= self.min_weight_g)
            and (self.max_weight_g is None or weight_g <= self.max_weight_g)
            and (self.fulfilment_type is None or self.fulfilment_type == fulfilment_type)
        )


def candidates_for(order: Order, shipment: Shipment, rules: Sequence[Rule]) -> list[Route]:
    """The first matching rule's route, then its fallback; empty when nothing matches."""
    country = order.shipping_address.country if order.shipping_address else ""
    for rule in rules:
        if rule.matches(country, shipment.weight_g, order.shipping.type.value):
            return [rule.route] + ([rule.fallback] if rule.fallback else [])
    return []


class BuiltinRouting:
    """Runs last: take the best candidate the rules produced."""

    @hookimpl(trylast=True)
    def fulfil_select_carrier(self, candidates: Sequence[Route]) -> Route | None:
        return candidates[0] if candidates else None
