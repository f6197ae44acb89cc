"""B3: microseconds per status transition, against python-statemachine and transitions.

All three run the same fulfilment table (``fulfil.core.states.FULFILMENT``) with the same
guard functions (``states.GUARDS``, called on the same order), one event per target
status, and the same cycle AWAITING_PROCESSING -> PROCESSING -> SHIPPED -> DELIVERED,
reset to the start between cycles (a state assignment for the libraries, rebinding the
start order for us). Each variant runs with 0 and with 3 listeners:

- fulfil: ``states.apply`` (check, guards, a new frozen ``Order``, a ``StatusChange``)
  plus ``Hooks.status_changed`` dispatching to 3 pluggy ``fulfil_status_changed`` impls;
- python-statemachine: a ``StateMachine`` bound to a model, 3 listener objects with
  ``after_transition``;
- transitions: a ``Machine`` (no auto transitions) with 3 ``after_state_change`` callbacks.

Every listener does the same thing (counts the call). Variants run interleaved, rounds
times, timeit-style (GC off inside a timed loop); the best round of each is reported.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from common import Result, benchmark_main, packages, rounded
from fulfil.core import states
from fulfil.core.demo import sample_orders
from fulfil.core.hookspecs import hookimpl
from fulfil.core.models import Order
from fulfil.core.plugins import Hooks, make_plugin_manager
from fulfil.core.states import FulfilmentStatus as F
from fulfil.core.states import PaymentStatus as P

# Ends on DELIVERED, not a final status: python-statemachine terminates in a final state.
CYCLE = (F.PROCESSING, F.SHIPPED, F.DELIVERED)
START = F.AWAITING_PROCESSING
EVENT = {status: f"to_{status.value.lower()}" for status in F}
GUARD_NAMES = {
    states._paid: "is_paid",
    states._all_trackable: "all_trackable",
    states._digital_and_paid: "digital_and_paid",
}


def bench_order() -> Order:
    """A paid shipping order whose shipment has a tracking number (every guard passes)."""
    order = next(o for o in sample_orders(12) if o.shipping.type.value == "shipping")
    order = order if order.physical_items else sample_orders(12)[-1]
    from fulfil.core.automation import plan_shipments

    shipments = tuple(
        attrs.evolve(s, tracking_number=f"TRK{i}") for i, s in enumerate(plan_shipments(order))
    )
    return attrs.evolve(order, payment_status=P.PAID, shipments=shipments)


class Model:
    """The domain object the libraries' machines act on: our order, our guards."""

    def __init__(self, order: Order) -> None:
        self.order = order
        self.policy = states.Policy()
        self.state: Any = START.value

    def is_paid(self, *_: Any) -> bool:
        return states._paid(self.order, self.policy)

    def all_trackable(self, *_: Any) -> bool:
        return states._all_trackable(self.order, self.policy)

    def digital_and_paid(self, *_: Any) -> bool:
        return states._digital_and_paid(self.order, self.policy)

    def is_shipping(self, *_: Any) -> bool:
        return self.order.shipping.type.value == "shipping"

    def is_pickup(self, *_: Any) -> bool:
        return self.order.shipping.type.value == "pickup"

    def is_local_delivery(self, *_: Any) -> bool:
        return self.order.shipping.type.value == "local_delivery"


TYPE_GUARD = {
    F.SHIPPED: "is_shipping",
    F.READY_FOR_PICKUP: "is_pickup",
    F.OUT_FOR_DELIVERY: "is_local_delivery",
}


def conditions(source: F, target: F) -> list[str]:
    """The guards of one move, as the model's method names (same order as ours)."""
    names = []
    for guard in states.GUARDS.get((source, target), ()):
        names.append(GUARD_NAMES.get(guard) or TYPE_GUARD[target])
    return names


def edges() -> list[tuple[F, F, list[str]]]:
    return [
        (source, target, conditions(source, target))
        for source, targets in states.FULFILMENT.items()
        for target in sorted(targets)
    ]


# --- fulfil -----------------------------------------------------------------------------


class Listener:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def fulfil_status_changed(self, order: Order, change: states.StatusChange) -> None:
        self.calls += 1


def fulfil_runner(listeners: int) -> Callable[[int], int]:
    pm = make_plugin_manager([Listener() for _ in range(listeners)], load_entrypoints=False)
    hooks = Hooks(pm)
    assert len(pm.hook.fulfil_status_changed.get_hookimpls()) == listeners
    start = bench_order()
    policy = states.Policy()
    apply = states.apply
    notify = hooks.status_changed

    def run(cycles: int) -> int:
        for _ in range(cycles):
            order = start
            for target in CYCLE:
                order, change = apply(order, "fulfilment", target, policy)
                notify(order, change)
        return cycles * len(CYCLE)

    return run


# --- python-statemachine ----------------------------------------------------------------


class PsmListener:
    def __init__(self) -> None:
        self.calls = 0

    def after_transition(self, model: Any, source: Any, target: Any) -> None:
        self.calls += 1


def psm_class() -> type:
    from statemachine import State, StateMachine

    final = {F.WILL_NOT_DELIVER, F.RETURNED}
    members: dict[str, Any] = {
        status.value.lower(): State(
            value=status.value, initial=status is START, final=status in final
        )
        for status in F
    }
    for source, target, conds in edges():
        transition = members[source.value.lower()].to(members[target.value.lower()], cond=conds)
        name = EVENT[target]
        members[name] = members[name] | transition if name in members else transition
    return type(StateMachine)("FulfilmentMachine", (StateMachine,), members)


def psm_runner(listeners: int) -> Callable[[int], int]:
    machine_class = psm_class()
    model = Model(bench_order())
    sm = machine_class(model, listeners=[PsmListener() for _ in range(listeners)])
    send = [getattr(sm, EVENT[target]) for target in CYCLE]

    def run(cycles: int) -> int:
        for _ in range(cycles):
            sm.current_state_value = START.value
            for event in send:
                event()
        assert model.state == CYCLE[-1].value
        return cycles * len(CYCLE)

    return run


# --- transitions ------------------------------------------------------------------------


def transitions_runner(listeners: int) -> Callable[[int], int]:
    from transitions import Machine

    model = Model(bench_order())
    counters = [PsmListener() for _ in range(listeners)]
    machine = Machine(
        model=model,
        states=[status.value for status in F],
        initial=START.value,
        auto_transitions=False,
        send_event=True,  # callbacks get the event (source, target), like our change
        after_state_change=[
            (lambda event, c=c: c.after_transition(event.model, None, None)) for c in counters
        ],
    )
    for source, target, conds in edges():
        machine.add_transition(EVENT[target], source.value, target.value, conditions=conds)
    send = [getattr(model, EVENT[target]) for target in CYCLE]

    def run(cycles: int) -> int:
        for _ in range(cycles):
            model.state = START.value
            for event in send:
                assert event()
        assert model.state == CYCLE[-1].value
        return cycles * len(CYCLE)

    return run


# --- measuring --------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[int], Callable[[int], int]]] = {
    "fulfil": fulfil_runner,
    "python_statemachine": psm_runner,
    "transitions": transitions_runner,
}


def timed(run: Callable[[int], int], cycles: int) -> float:
    """Microseconds per transition of one loop, GC off (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        moves = run(cycles)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    return elapsed / moves * 1e6


def run(quick: bool, profile: Path | None = None) -> Result:
    cycles, rounds = (500, 7) if quick else (5_000, 15)
    runners = {(name, n): factory(n) for name, factory in RUNNERS.items() for n in (0, 3)}
    for runner in runners.values():  # warm-up: imports, caches, first-call paths
        runner(200)
    best: dict[tuple[str, int], float] = {key: float("inf") for key in runners}
    for _ in range(rounds):
        for key, runner in runners.items():
            best[key] = min(best[key], timed(runner, cycles))
    us = {f"{name}_us_{n}": rounded(v, 3) for (name, n), v in best.items()}
    ours = best[("fulfil", 3)]
    return {
        **us,
        "speedup_vs_python_statemachine": rounded(best[("python_statemachine", 3)] / ours, 2),
        "speedup_vs_transitions": rounded(best[("transitions", 3)] / ours, 2),
        "speedup_vs_python_statemachine_0": rounded(
            best[("python_statemachine", 0)] / best[("fulfil", 0)], 2
        ),
        "speedup_vs_transitions_0": rounded(best[("transitions", 0)] / best[("fulfil", 0)], 2),
        "transitions_per_round": cycles * len(CYCLE),
        "rounds": rounds,
        "versions": packages(
            {
                "python_statemachine": "python-statemachine",
                "transitions": "transitions",
                "pluggy": "pluggy",
                "attrs": "attrs",
            }
        ),
    }


if __name__ == "__main__":
    benchmark_main(__doc__.splitlines()[0], run)
