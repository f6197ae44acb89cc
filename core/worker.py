"""The worker: drains the outbox (label purchases, notifications, voids) and books pickups.

Rows are claimed with a lease, so several worker processes can share one database and a
killed worker's rows are taken over when its lease expires. The carrier and provider calls
of a batch run concurrently in a thread pool (bulk label purchase is I/O-bound); every
database write happens on the calling thread, one short transaction per outcome.
Delivery is at least once; dedupe keys make the repeat harmless (the carrier's idempotency
key, the notifier's dedupe key).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import attrs
from fulfil.core import pickups, saga
from fulfil.core.engine import Engine
from fulfil.core.errors import CarrierError, NotifierError
from fulfil.core.models import Event, Label
from fulfil.core.notifiers import Message
from fulfil.core.resilience import CircuitBreaker, TokenBucket, full_jitter
from fulfil.core.store.repo import Tx

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger(__name__)

KINDS = ("label", "notification", "void")
CIRCUIT_OPEN = "circuit_open"


@attrs.define
class WorkerStats:
    counts: Counter[str] = attrs.field(factory=Counter)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n


class Worker:
    def __init__(
        self,
        engine: Engine,
        *,
        owner: str | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        lease_seconds: float | None = None,
        max_attempts: int | None = None,
        backoff: Callable[..., float] = full_jitter,
    ) -> None:
        settings = engine.config.worker
        self.engine = engine
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"
        self.concurrency = concurrency or settings.concurrency
        self.batch_size = batch_size or settings.batch_size
        self.lease_seconds = lease_seconds or settings.lease_seconds
        self.max_attempts = max_attempts or settings.max_attempts
        self.backoff = backoff
        self.buckets: dict[str, TokenBucket] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.stats = WorkerStats()
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="fulfil-worker")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        *,
        until_idle: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
        poll_seconds: float = 1.0,
        on_batch: Callable[[WorkerStats], None] | None = None,
        max_wait: float = 60.0,
    ) -> WorkerStats:
        """Process batches; with ``until_idle``, return once nothing is due or will be soon.

        Rows waiting for a retry less than ``max_wait`` seconds away are waited for, so
        ``fulfil run`` finishes a carrier's 429 or 5xx burst instead of leaving it behind.
        """
        while not should_stop():
            handled = self.run_once()
            if on_batch:
                on_batch(self.stats)
            if handled:
                continue
            with self.engine.store.transaction() as tx:
                due = tx.next_due()
            now = self.engine.clock.time()
            if until_idle and (due is None or due - now > max_wait):
                break
            time.sleep(min(poll_seconds, max(due - now, 0.01)) if due else poll_seconds)
        return self.stats

    def run_once(self) -> int:
        """Claim one batch, do it, book the pickups it made ready; return rows handled."""
        engine = self.engine
        with engine.store.transaction() as tx:
            rows = tx.claim(
                self.owner, engine.clock.time(), self.lease_seconds, self.batch_size, KINDS
            )
            tasks, broken = [], []
            for row in rows:
                try:
                    task = self._task(tx, row)
                except Exception as refused:  # e.g. a plugin refusing its settings
                    broken.append((row, refused))
                    continue
                if task is None:  # nothing left to do (e.g. bought by an earlier attempt)
                    self._finish(tx, row, status="done")
                else:
                    tasks.append((row, task))
        for row, problem in broken:
            self._failed(row, problem)
        futures = {self.pool.submit(task[0]): (row, task[1]) for row, task in tasks}
        sent: list[Any] = []
        for future in as_completed(futures):
            row, settle = futures[future]
            try:
                result = future.result()
            except Exception as error:  # settled per row below; never stops the batch
                self._failed(row, error)
            else:
                if row.kind == "notification":
                    sent.append(row)
                    continue
                try:
                    settle(result)
                except Exception as error:  # e.g. the order changed under us: retry the row;
                    self._failed(row, error)  # a bought label is then found by its key
        self._sent(sent)
        # Every pass, not only busy ones: a pickup that failed transiently is tried again.
        for pickup in pickups.book_due(engine):
            self.stats.add("pickups")
            log.info("pickup %s booked", pickup.id)
        return len(rows)

    # --- per kind -----------------------------------------------------------------------

    def _task(self, tx: Tx, row: Any) -> tuple[Callable[[], Any], Callable[[Any], None]] | None:
        """(work for a pool thread, what to do with its result on this thread), or None."""
        engine = self.engine
        if row.kind == "label":
            job = saga.prepare(engine, tx, row.payload["key"])
            if job is None:
                return None
            carrier = engine.carrier(job.carrier)
            return (
                # The carrier is built here, on one thread, not raced for by the pool.
                lambda: self._guarded(job.carrier, lambda: saga.call(carrier, job)),
                lambda bought: self._bought(row, job, bought),
            )
        if row.kind == "notification":
            message = Message.from_mapping(row.payload["message"])
            notifier = engine.notifier(row.payload["notifier"])
            return (lambda: notifier.send(message), lambda _: None)
        if row.kind == "void":
            name, label = row.payload["carrier"], Label.from_mapping(row.payload["label"])
            voider = engine.carrier(name)
            return (
                lambda: self._guarded(name, lambda: voider.cancel_label(label)),
                lambda _: self._voided(row),
            )
        log.error("outbox row %s has unknown kind %r", row.id, row.kind)
        return None

    def _guarded(self, carrier: str, call: Callable[[], Any]) -> Any:
        """Rate limit and circuit breaker around one carrier call (in a pool thread)."""
        breaker = self.breakers.setdefault(carrier, CircuitBreaker())
        if breaker.is_open:
            raise CarrierError(
                carrier, "unavailable", "circuit open after repeated failures", code=CIRCUIT_OPEN
            )
        if carrier not in self.buckets:
            rate = self.engine.rate_limit(carrier)
            # No burst, and a hair under the limit: the carrier counts in its own windows,
            # and a burst at start-up is exactly what earns 429s.
            self.buckets[carrier] = TokenBucket(rate * 0.98 if rate else None, burst=1)
        bucket = self.buckets[carrier]
        bucket.acquire()
        try:
            result = call()
        except CarrierError as error:
            if error.kind == "rate_limited":
                bucket.pause(error.retry_after if error.retry_after is not None else 1.0)
            elif error.transient or error.unknown_outcome:
                breaker.failure()
            raise
        breaker.success()
        return result

    def _voided(self, row: Any) -> None:
        self.stats.add("labels_voided")
        with self.engine.store.transaction() as tx:
            self._finish(tx, row, status="done")

    def _bought(self, row: Any, job: saga.Job, bought: Any) -> None:
        engine = self.engine
        path = saga.save_document(engine, job.key, bought)  # before the commit that points at it
        with engine.store.transaction() as tx:
            work = saga.settle_bought(engine, tx, job.key, bought, path)
            self._finish(tx, row, status="done")
        if work is not None:
            self.stats.add("labels")
            engine.after_commit([work])

    def _sent(self, rows: list[Any]) -> None:
        if not rows:
            return
        now = self.engine.clock.now()
        with self.engine.store.transaction() as tx:
            for row in rows:
                self._finish(tx, row, status="done", attempts=row.attempts + 1, last_error=None)
            tx.add_events(
                Event(
                    row.order_id,
                    int(row.payload.get("version", 0)),
                    now,
                    "notification",
                    f"plugin:{row.payload['notifier']}",
                    {
                        "template": row.payload["message"]["event"],
                        "channel": row.payload["message"]["channel"],
                        "audience": row.payload["message"]["audience"],
                    },
                )
                for row in rows
            )
        self.stats.add("messages", len(rows))

    def _failed(self, row: Any, error: BaseException) -> None:
        """Retry, fall back or dead-letter one row, in one transaction with its outcome."""
        engine = self.engine
        attempts = row.attempts + 1
        done: list[Any] = []
        with engine.store.transaction() as tx:
            if isinstance(error, CarrierError) and row.kind == "label":
                done = self._label_failed(tx, row, attempts, error)
            elif isinstance(error, CarrierError | NotifierError):
                engine.log_carrier_error(row.kind, row.dedupe_key, error)
                if error.transient and attempts < self.max_attempts:
                    self._retry(tx, row, attempts, error, error.retry_after)
                else:
                    self.stats.add(f"{row.kind}_failed")
                    self._finish(tx, row, status="dead", attempts=attempts, last_error=str(error))
            else:  # a bug or an unexpected failure in a plugin: retried, then dead-lettered
                log.error("outbox row %s (%s) failed: %s", row.id, row.kind, type(error).__name__)
                text = f"{type(error).__name__}: {error}"
                if attempts < self.max_attempts:
                    self._retry(tx, row, attempts, text, None)
                else:
                    self._finish(tx, row, status="dead", attempts=attempts, last_error=text)
        engine.after_commit(done)

    def _label_failed(self, tx: Tx, row: Any, attempts: int, error: CarrierError) -> list[Any]:
        engine = self.engine
        key = row.payload["key"]
        engine.log_carrier_error("label", key, error)
        if error.unknown_outcome:
            saga.mark_unknown(engine, tx, key, error)
        open_with_fallback = error.code == CIRCUIT_OPEN and saga.can_fall_back(tx, key)
        retryable = error.transient or error.unknown_outcome
        if retryable and not open_with_fallback and attempts < self.max_attempts:
            self._retry(tx, row, attempts, error, error.retry_after)
            return []
        work, fell_back = saga.settle_failed(engine, tx, key, error)
        self.stats.add("labels_fallback" if fell_back else "labels_failed")
        status = "done" if fell_back else "dead"
        self._finish(tx, row, status=status, attempts=attempts, last_error=str(error))
        return [work] if work is not None else []

    def _retry(
        self, tx: Tx, row: Any, attempts: int, error: object, retry_after: float | None
    ) -> None:
        delay = self.backoff(attempts, retry_after=retry_after)
        self.stats.add("retries")
        self._finish(
            tx,
            row,
            status="pending",
            attempts=attempts,
            last_error=str(error),
            available_at=self.engine.clock.time() + delay,
        )

    def _finish(self, tx: Tx, row: Any, **values: Any) -> None:
        if not tx.finish(row.id, self.owner, self.engine.clock.now().isoformat(), **values):
            log.warning("outbox row %s: lease lost to another worker", row.id)
