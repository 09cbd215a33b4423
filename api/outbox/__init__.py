"""Notifications out: warnings swept into the outbox, the outbox delivered to webhooks.

Every uvicorn worker runs one `Sweeper` (started and stopped in the app's lifespan): a thread
that every `workflow.sweep_seconds` pushes risen warnings (api/outbox/sweep.py) and delivers
what is due (api/outbox/deliver.py). Several workers share the work through the database —
row locks skipped, not waited on, and leases — so none sends a notification another is sending.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from sqlalchemy import Engine

from api.db.partitions import maintain as maintain_partitions
from api.outbox.deliver import Deliverer, RetryPolicy, RoundReport
from api.outbox.sweep import sweep_warnings
from api.settings import Settings

log = logging.getLogger("wangge.outbox")
PARTITION_SECONDS = 6 * 3600  # how often a worker makes sure the coming months' partitions exist
PARTITIONS_AHEAD = 3

__all__ = ["Deliverer", "RetryPolicy", "Sweeper", "sweep_warnings"]


class Sweeper:
    """A background thread per worker: the warning sweep and a delivery round, periodically."""

    def __init__(
        self, engine: Engine, settings: Settings, policy: RetryPolicy | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = settings.workflow.sweep_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deliverer = Deliverer(engine, settings.workflow.webhooks, policy, self._stop)
        self._partitions_checked = float("-inf")

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="wangge-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Workers started together would sweep in step; a random first wait spreads them.
        wait = self.interval * random.random()  # noqa: S311 (spreading load, not a secret)
        while not self._stop.wait(wait):
            self.run_once()
            wait = self.interval

    def run_once(self) -> RoundReport | None:
        """One sweep and one delivery round; a failure is logged, and the next round tries again."""
        try:
            sweep_warnings(self.engine, self.settings.workflow)
        except Exception:  # the thread must outlive a database restart
            log.exception("warning sweep failed")
        self._maintain_partitions()
        try:
            return self.deliverer.round()
        except Exception:
            log.exception("outbox delivery round failed")
            return None

    def _maintain_partitions(self) -> None:
        """This month and the next few have their event partitions (intake also creates a
        missing month, and rows without one wait in the default partition: nothing is lost)."""
        if time.monotonic() - self._partitions_checked < PARTITION_SECONDS:
            return
        self._partitions_checked = time.monotonic()
        try:
            with self.engine.begin() as connection:
                created = maintain_partitions(connection, PARTITIONS_AHEAD)
            if created:
                log.info("event partitions created: %s", ", ".join(created))
        except Exception:
            log.exception("event partition maintenance failed")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the request in flight (if any); unsent leased rows are given back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.deliverer.close()
