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

from sqlalchemy import Engine

from api.outbox.deliver import Deliverer, RetryPolicy, RoundReport
from api.outbox.sweep import sweep_warnings
from api.settings import Settings

log = logging.getLogger("wangge.outbox")

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
        try:
            return self.deliverer.round()
        except Exception:
            log.exception("outbox delivery round failed")
            return None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the request in flight (if any); unsent leased rows are given back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.deliverer.close()
