"""The worker: drains the outbox (label purchases, notifications, voids) and books pickups.

Rows are claimed with a lease, so several worker processes can share one database and a
killed worker's rows are taken over when its lease expires. The carrier and provider calls
run concurrently in a thread pool (bulk label purchase is I/O-bound) that is kept fed: new
rows are claimed while earlier ones are still in flight. Every database write happens on
the calling thread; the outcomes that completed together are stored in one transaction.
Delivery is at least once; dedupe keys make the repeat harmless (the carrier's idempotency
key, the notifier's dedupe key).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import attrs
from fulfil.core import pickups, saga
from fulfil.core.engine import Engine
from fulfil.core.errors import CarrierError, NotifierError
from fulfil.core.models import Event, Label
from fulfil.core.notifiers import Message
from fulfil.core.resilience import CircuitBreaker, TokenBucket, full_jitter, rate_limited
from fulfil.core.store.repo import Tx
from fulfil.core.work import Work

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger(__name__)

KINDS = ("label", "notification", "void")
CIRCUIT_OPEN = "circuit_open"
LINGER = 0.002  # seconds; B1: ~10% more orders/s than settling each completion alone
BOOKING_INTERVAL = 1.0  # seconds between pickup passes while busy (labels join booked ones)


@attrs.define
class WorkerStats:
    counts: Counter[str] = attrs.field(factory=Counter)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n


@attrs.define
class Settled:
    """The outbox rows one settle transaction finishes, and what to do once it committed."""

    done: list[tuple[int, int]] = attrs.field(factory=list)  # (outbox row id, attempts)
    works: list[Work] = attrs.field(factory=list)
    counts: Counter[str] = attrs.field(factory=Counter)


@attrs.frozen
class Task:
    """A claimed row: the call a pool thread makes, and how its result is stored."""

    row: Any
    call: Callable[[], Any]
    settle: Callable[[Tx, Any, Any, Settled], None]  # (tx, row, result, settled): in a tx


def _done(
    completed: queue.SimpleQueue[Future[Any]], timeout: float, linger: float
) -> list[Future[Any]]:
    """The calls that completed: waits for one (up to ``timeout``), lets the others run for
    ``linger`` seconds more, then takes all there are."""
    try:
        done = [completed.get(timeout=timeout)]
    except queue.Empty:
        return []
    if linger:
        time.sleep(linger)
    while True:
        try:
            done.append(completed.get_nowait())
        except queue.Empty:
            return done


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
        circuit_breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        settings = engine.config.worker
        self.engine = engine
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"
        self.concurrency = concurrency or settings.concurrency
        self.batch_size = batch_size or settings.batch_size
        self.lease_seconds = lease_seconds or settings.lease_seconds
        self.max_attempts = max_attempts or settings.max_attempts
        self.backoff = backoff
        self.circuit_breaker = circuit_breaker  # makes each carrier's breaker
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
        """Work until stopped; with ``until_idle``, return once nothing is due or will be soon.

        Rows waiting for a retry less than ``max_wait`` seconds away are waited for, so
        ``fulfil run`` finishes a carrier's 429 or 5xx burst instead of leaving it behind.
        ``should_stop`` ends the claiming; the calls in flight are finished and stored.
        """
        in_flight: dict[Future[Any], Task] = {}
        completed: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        # Claim again when half the rows in hand are done: the pool never runs dry, and
        # each claim (one transaction) takes many rows.
        capacity = max(self.batch_size, 2 * self.concurrency)
        next_booking = 0.0
        while True:
            stopping = should_stop()
            claimed = 0
            if not stopping and len(in_flight) <= capacity // 2:
                claimed, tasks = self._claim(capacity - len(in_flight))
                for task in tasks:
                    future = self.pool.submit(task.call)
                    in_flight[future] = task
                    future.add_done_callback(completed.put)
            if in_flight:
                # With other calls in flight, a moment's wait lets more of them finish
                # and share the transaction (most of the cost of storing a few outcomes).
                linger = LINGER if len(in_flight) > 1 else 0.0
                done = _done(completed, poll_seconds, linger)
                self._settle([(in_flight.pop(future), future) for future in done])
                if time.monotonic() >= next_booking:
                    self._book_pickups()
                    next_booking = time.monotonic() + BOOKING_INTERVAL
                if on_batch:
                    on_batch(self.stats)
                continue
            # Idle: every pass, so a pickup that failed transiently is tried again.
            self._book_pickups()
            if on_batch:
                on_batch(self.stats)
            if stopping:
                break
            if claimed:  # rows with nothing left to do were finished: look again at once
                continue
            with self.engine.store.transaction() as tx:
                due = tx.next_due()
            now = self.engine.clock.time()
            if until_idle and (due is None or due - now > max_wait):
                break
            time.sleep(min(poll_seconds, max(due - now, 0.01)) if due else poll_seconds)
        return self.stats

    def _claim(self, limit: int) -> tuple[int, list[Task]]:
        """Lease up to ``limit`` due rows and prepare their calls; (rows claimed, tasks)."""
        engine = self.engine
        with engine.store.transaction() as tx:
            rows = tx.claim(self.owner, engine.clock.time(), self.lease_seconds, limit, KINDS)
            keys = [row.payload["key"] for row in rows if row.kind == "label"]
            jobs = saga.prepare(engine, tx, keys) if keys else {}
            tasks, broken, done = [], [], []
            for row in rows:
                try:
                    task = self._task(row, jobs)
                except Exception as refused:  # e.g. a plugin refusing its settings
                    broken.append((row, refused))
                    continue
                if task is None:  # nothing left to do (e.g. bought by an earlier attempt)
                    done.append((row.id, row.attempts))
                else:
                    tasks.append(task)
            self._finish_done(tx, done, engine.clock.now().isoformat())
        for row, problem in broken:
            self._failed(row, problem)
        return len(rows), tasks

    def _settle(self, finished: list[tuple[Task, Future[Any]]]) -> None:
        """Store the outcomes that completed together, in one transaction."""
        outcomes = []
        for task, future in finished:
            try:
                outcomes.append((task, future.result()))
            except Exception as error:  # settled per row; never stops the others
                self._failed(task.row, error)
        if not outcomes:
            return
        try:
            settled = self._store(outcomes)
        except Exception:
            # One outcome could not be stored (e.g. its order changed under us): store each
            # alone, so that one row retried does not take the others with it.
            settled = Settled()
            for task, result in outcomes:
                try:
                    one = self._store([(task, result)])
                except Exception as error:  # retried; a bought label is then found by key
                    self._failed(task.row, error)
                else:
                    settled.works += one.works
                    settled.counts += one.counts
        self.stats.counts.update(settled.counts)
        self.engine.after_commit(settled.works)

    def _store(self, outcomes: list[tuple[Task, Any]]) -> Settled:
        settled = Settled()
        now = self.engine.clock.now().isoformat()
        with self.engine.store.transaction() as tx:
            labels = [task.row.payload["key"] for task, _ in outcomes if task.row.kind == "label"]
            saga.read_ahead(tx, labels)
            for task, result in outcomes:
                task.settle(tx, task.row, result, settled)
            self._finish_done(tx, settled.done, now)
        return settled

    def _finish_done(self, tx: Tx, rows: list[tuple[int, int]], now: str) -> None:
        lost = len(rows) - tx.finish_done(self.owner, now, rows)
        if lost:
            log.warning("%d outbox row(s): lease lost to another worker", lost)

    def _book_pickups(self) -> None:
        for pickup in pickups.book_due(self.engine, self._guarded, self.owner):
            self.stats.add("pickups")
            log.info("pickup %s booked", pickup.id)

    # --- per kind -----------------------------------------------------------------------

    def _task(self, row: Any, jobs: dict[str, saga.Job]) -> Task | None:
        """The call for a row and how to store its result, or None if nothing is left."""
        engine = self.engine
        if row.kind == "label":
            job = jobs.get(row.payload["key"])
            if job is None:
                return None
            carrier = engine.carrier(job.carrier)  # built here, not raced for by the pool

            def buy() -> tuple[Any, str | None]:
                bought = self._guarded(job.carrier, lambda: saga.call(carrier, job))
                # Written by the pool thread, before the commit that points at it.
                return bought, saga.save_document(engine, job.key, bought)

            return Task(row, buy, partial(self._bought, job))
        if row.kind == "notification":
            message = Message.from_mapping(row.payload["message"])
            notifier = engine.notifier(row.payload["notifier"])
            return Task(row, lambda: notifier.send(message), self._sent)
        if row.kind == "void":
            name, label = row.payload["carrier"], Label.from_mapping(row.payload["label"])
            voider = engine.carrier(name)
            return Task(
                row,
                lambda: self._guarded(name, lambda: voider.cancel_label(label)),
                self._voided,
            )
        log.error("outbox row %s has unknown kind %r", row.id, row.kind)
        return None

    def _guarded(self, carrier: str, call: Callable[[], Any]) -> Any:
        """Rate limit and circuit breaker around one carrier call (in a pool thread)."""
        if carrier not in self.breakers:
            self.breakers[carrier] = self.circuit_breaker()
        breaker = self.breakers[carrier]
        if breaker.is_open:
            raise CarrierError(
                carrier,
                "unavailable",
                "circuit open after repeated failures",
                code=CIRCUIT_OPEN,
                retry_after=breaker.remaining(),
            )
        if carrier not in self.buckets:
            rate = self.engine.rate_limit(carrier)
            # No burst, and a hair under the limit: the carrier counts in its own windows,
            # and a burst at start-up is exactly what earns 429s.
            self.buckets[carrier] = TokenBucket(rate * 0.98 if rate else None, burst=1)
        bucket = self.buckets[carrier]
        try:
            with rate_limited(bucket):  # a token per request the call sends
                result = call()
        except CarrierError as error:
            if error.kind == "rate_limited":
                bucket.pause(error.retry_after if error.retry_after is not None else 1.0)
            elif error.transient or error.unknown_outcome:
                breaker.failure()
            raise
        breaker.success()
        return result

    def _voided(self, tx: Tx, row: Any, _result: Any, settled: Settled) -> None:
        settled.done.append((row.id, row.attempts + 1))
        settled.counts["labels_voided"] += 1

    def _bought(self, job: saga.Job, tx: Tx, row: Any, result: Any, settled: Settled) -> None:
        bought, path = result
        work = saga.settle_bought(self.engine, tx, job.key, bought, path, job.order)
        settled.done.append((row.id, row.attempts + 1))
        if work is not None:
            settled.works.append(work)
            settled.counts["labels"] += 1

    def _sent(self, tx: Tx, row: Any, _result: Any, settled: Settled) -> None:
        message = row.payload["message"]
        settled.done.append((row.id, row.attempts + 1))
        event = Event(
            row.order_id,
            int(row.payload.get("version", 0)),
            self.engine.clock.now(),
            "notification",
            f"plugin:{row.payload['notifier']}",
            {
                "template": message["event"],
                "channel": message["channel"],
                "audience": message["audience"],
            },
        )
        tx.add_events([event])
        settled.counts["messages"] += 1

    def _failed(self, row: Any, error: BaseException) -> None:
        """Retry, fall back or dead-letter one row, in one transaction with its outcome."""
        engine = self.engine
        attempts = row.attempts + 1
        done: list[Any] = []
        with engine.store.transaction() as tx:
            if (
                isinstance(error, CarrierError)
                and error.code == CIRCUIT_OPEN
                and not (row.kind == "label" and saga.can_fall_back(tx, row.payload["key"]))
            ):
                # The carrier was not called: no attempt spent; wait for the breaker's trial.
                self._postpone(tx, row, str(error), error.retry_after or 1.0)
            elif isinstance(error, CarrierError) and row.kind == "label":
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

    def _postpone(self, tx: Tx, row: Any, reason: str, delay: float) -> None:
        self.stats.add("postponed")
        self._finish(
            tx,
            row,
            status="pending",
            attempts=row.attempts,
            last_error=reason,
            available_at=self.engine.clock.time() + delay,
        )

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
