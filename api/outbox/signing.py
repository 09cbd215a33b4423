"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body bytes.

A receiver recomputes `sha256=` + hex(HMAC(secret, f"{timestamp}." + body)) and compares it in
constant time; the timestamp is signed too, so a captured request cannot be replayed later than
the receiver's tolerance (`verify`'s `tolerance_s`) with a new date.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Wangge-Signature"
TIMESTAMP_HEADER = "X-Wangge-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of X-Wangge-Signature for `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(secret: str, body: bytes, outbox_id: int, now: float | None = None) -> dict:
    """Headers of one delivery: timestamp, signature and the idempotency key (the outbox id)."""
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        IDEMPOTENCY_HEADER: str(outbox_id),
    }


def verify(
    secret: str,
    timestamp: str | None,
    signature_value: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """Whether a received request was signed with `secret` within `tolerance_s` of now."""
    if not timestamp or not signature_value or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), signature_value)
