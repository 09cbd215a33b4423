"""Delivery of the outbox to webhooks: signed POSTs, at least once, retried with back-off.

One round: match new notifications to the configured targets, then repeatedly lease a batch of
due deliveries (a short transaction that commits the lease), send them with no transaction open,
and record each answer. A worker that dies mid-send leaves its rows leased; when the lease ends
another worker sends them again, with the same idempotency key. A 2xx answer is delivered;
anything else (a network error, a timeout, another status) is retried after
min(cap, base · 2^(attempts − 1)), half of it random (jitter), so the waits never shrink.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from api.db import outbox as rows
from api.outbox.signing import signed_headers
from api.settings import WebhookTarget

log = logging.getLogger("wangge.outbox")


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 1.0
    cap_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    batch: int = 20

    @property
    def lease_seconds(self) -> float:
        """Long enough to send a whole batch to receivers answering at the timeout's edge."""
        return self.batch * self.timeout_seconds + 30

    def delay(self, attempts: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds until the next attempt after `attempts` failed ones: growing, capped."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + ceiling / 2 * rng()


@dataclass
class RoundReport:
    seeded: int = 0
    delivered: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # target → last error this round

    def as_json(self) -> dict[str, Any]:
        return {
            "seeded": self.seeded,
            "delivered": self.delivered,
            "failed": self.failed,
            "errors": self.errors,
        }


def envelope(row: dict[str, Any]) -> bytes:
    """The body of a delivery: the same bytes on every attempt."""
    created = row["created_at"]
    return orjson.dumps(
        {
            "id": row["outbox_id"],
            "kind": row["kind"],
            "event_id": row["event_id"],
            "created_at": created.astimezone(UTC).isoformat()
            if isinstance(created, datetime)
            else created,
            "payload": row["payload"],
        }
    )


def _problem(response: httpx.Response) -> str:
    snippet = response.text[:200].replace("\n", " ") if response.content else ""
    return f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")


class Deliverer:
    """Sends this worker's share of the outbox; one per process (its HTTP client is reused)."""

    def __init__(
        self,
        engine: Engine,
        targets: list[WebhookTarget],
        policy: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.targets = {target.name: target for target in targets}
        self.policy = policy or RetryPolicy()
        self.stop = stop or threading.Event()
        self.rng = rng  # the back-off's jitter (tests pin it)
        self.client = httpx.Client(
            timeout=self.policy.timeout_seconds,
            follow_redirects=False,  # a redirect is not a delivery
            headers={"User-Agent": "wangge-outbox/0.1"},
        )

    def close(self) -> None:
        self.client.close()

    def send(self, row: dict[str, Any]) -> str | None:
        """POST one notification; None when the receiver answered 2xx, else what went wrong."""
        target = self.targets[row["target"]]
        body = envelope(row)
        headers = signed_headers(target.secret, body, row["outbox_id"])
        headers["X-Wangge-Attempt"] = str(row["attempts"])
        try:
            response = self.client.post(target.url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            return f"timeout: {type(error).__name__}"
        except httpx.HTTPError as error:
            return f"network: {type(error).__name__}: {error}"
        return None if 200 <= response.status_code < 300 else _problem(response)

    def round(self, max_batches: int = 1000) -> RoundReport:
        """Match new notifications to targets, then send everything due (until none is left,
        `stop` is set, or `max_batches` leases were taken)."""
        report = RoundReport()
        names = sorted(self.targets)
        if not names:
            return report
        with self.engine.begin() as connection:
            report.seeded = rows.seed_deliveries(connection, names)
        for _ in range(max_batches):
            if self.stop.is_set():
                break
            with self.engine.begin() as connection:
                claimed = rows.claim_due(
                    connection, names, self.policy.batch, self.policy.lease_seconds
                )
            if not claimed:
                break
            self._send_batch(claimed, report)
        return report

    def _send_batch(self, claimed: list[dict[str, Any]], report: RoundReport) -> None:
        down: dict[str, datetime] = {}  # target → when to retry its rows not sent this batch
        for row in claimed:
            target = row["target"]
            if target in down or self.stop.is_set():
                # The target just failed (or we are stopping): give the row back unsent.
                retry_at = down.get(target, datetime.now(UTC))
                with self.engine.begin() as connection:
                    rows.release(connection, row["outbox_id"], target, row["lease_until"], retry_at)
                continue
            problem = self.send(row)
            with self.engine.begin() as connection:
                if problem is None:
                    rows.mark_delivered(connection, row["outbox_id"], target)
                    report.delivered += 1
                    continue
                delay = self.policy.delay(row["attempts"], self.rng)
                rows.mark_failed(
                    connection, row["outbox_id"], target, row["lease_until"], delay, problem
                )
            report.failed += 1
            report.errors[target] = problem
            down[target] = datetime.now(UTC) + timedelta(seconds=delay)
            log.warning(
                "webhook %s: notification %s attempt %s failed (%s); next in %.0f s",
                target,
                row["outbox_id"],
                row["attempts"],
                problem,
                delay,
            )
