"""Every error fulfil raises on purpose derives from ``FulfilError``.

The tree::

    FulfilError
    ├── InputError                 bad input at a boundary: nothing was written
    │   ├── ValidationFailed       an order or config file broke its JSON Schema; .problems
    │   ├── ConfigError            the config cannot be read or names unknown plugins
    │   └── OrderNotFound          no order with that id
    ├── InvalidTransition          a status change the state machines forbid; nothing written
    ├── PluginError                a plugin registered something malformed or twice
    ├── WorkerFailed               a worker process of ``fulfil run --processes`` died
    ├── CarrierError               a carrier operation failed; .kind says how to react
    │     kinds: auth, validation, rejected        -> permanent, the carrier's reason is shown
    │            rate_limited, unavailable         -> transient, retried (honours retry_after)
    │            unknown_outcome                   -> reconcile by idempotency key, never rebuy
    └── NotifierError              a notification could not be sent; .transient decides retry

The carrier's and provider's own code and message are kept on the exception: the most
common complaint about multi-carrier libraries is errors flattened into "internal error".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = [
    "CarrierError",
    "ConfigError",
    "FulfilError",
    "InputError",
    "InvalidTransition",
    "NotifierError",
    "OrderNotFound",
    "PluginError",
    "Problem",
    "ValidationFailed",
    "WorkerFailed",
]


class FulfilError(Exception):
    """Base of every error fulfil raises on purpose."""


class InputError(FulfilError):
    """Input from a user or file was rejected before anything was written."""


class Problem:
    """One reason an input was rejected: where (file and JSON path) and why."""

    __slots__ = ("path", "reason", "source")

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source = source
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.path or '(top level)'}: {self.reason}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class ValidationFailed(InputError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(InputError):
    pass


class OrderNotFound(InputError):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no order with id {order_id!r}")


class InvalidTransition(FulfilError):
    def __init__(
        self, order_id: str, machine: str, current: str, requested: str, allowed: Iterable[str]
    ) -> None:
        self.order_id = order_id
        self.machine = machine
        self.current = current
        self.requested = requested
        self.allowed = tuple(allowed)
        allowed_text = ", ".join(self.allowed) or "none (final state)"
        super().__init__(
            f"order {order_id}: {machine} status cannot go from {current} to {requested}; "
            f"allowed next: {allowed_text}"
        )


class PluginError(FulfilError):
    pass


class WorkerFailed(FulfilError):
    """A worker process ended with an error; the rows it held are taken over when their
    lease expires (the next run does them)."""


CarrierErrorKind = Literal[
    "auth", "validation", "rate_limited", "unavailable", "rejected", "unknown_outcome"
]


class CarrierError(FulfilError):
    TRANSIENT_KINDS = frozenset({"rate_limited", "unavailable"})

    def __init__(
        self,
        carrier: str,
        kind: CarrierErrorKind,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        self.carrier = carrier
        self.kind = kind
        self.message = message
        self.code = code
        self.field = field
        self.retry_after = retry_after
        self.status_code = status_code
        parts = [f"{carrier}: {kind}"]
        if code:
            parts.append(f"[{code}]")
        if field:
            parts.append(f"{field}:")
        parts.append(message)
        super().__init__(" ".join(parts))

    @property
    def transient(self) -> bool:
        return self.kind in self.TRANSIENT_KINDS

    @property
    def unknown_outcome(self) -> bool:
        return self.kind == "unknown_outcome"


class NotifierError(FulfilError):
    def __init__(
        self,
        notifier: str,
        message: str,
        *,
        transient: bool,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.notifier = notifier
        self.message = message
        self.transient = transient
        self.code = code
        self.retry_after = retry_after
        super().__init__(f"{notifier}: {'[' + code + '] ' if code else ''}{message}")
