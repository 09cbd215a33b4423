"""Notifications out: warnings swept into the outbox, the outbox delivered to webhooks.

(Being built: issue 12 §1.) `Sweeper` runs in each worker's lifespan; it does nothing until built.
"""

from __future__ import annotations

from sqlalchemy import Engine

from api.settings import Settings


class Sweeper:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None
