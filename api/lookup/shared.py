"""One lookup index shared by every worker of `wangge serve --workers N`.

The serving master (`api.lookup.shared_serve`) builds the index of the active generation and
the address register once, freezes them out of the cyclic GC and forks its workers: their
pages stay shared copy-on-write, so a worker costs its own request state, not another index.
A worker's `IndexStore` adopts what the master left here instead of building its own. On a
publish the master builds the new generation and replaces its workers (new ones first, then
the old ones drain); a managed worker therefore does not rebuild by itself unless the master
has not replaced it within `HANDOVER_SECONDS` (a stuck master must not freeze the service on an
old generation).

Without the master (tests, `uvicorn` directly, one worker) nothing is preloaded and every
`IndexStore` builds its own index, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.geocode.index import Gazetteer
    from spatial.lookup import GridIndex

HANDOVER_SECONDS = 30.0


@dataclass(frozen=True)
class Snapshot:
    """What the master built: the active generation's index, the gazetteer and its stamp, and
    the staff on duty (a worker keeps this very object while the staff do not change)."""

    index: GridIndex
    gazetteer: Gazetteer
    register: tuple[Any, ...]
    staff: dict[str, list[dict[str, Any]]]
    staff_stamp: str | None

    @property
    def key(self) -> tuple[int, int]:
        """Changes when the workers must be replaced: a new generation or a reloaded register."""
        return (self.index.generation, id(self.gazetteer))


_preloaded: Snapshot | None = None
_managed = False


def preload(snapshot: Snapshot | None) -> None:
    """Master only, before forking: what the next workers adopt."""
    global _preloaded
    _preloaded = snapshot


def preloaded() -> Snapshot | None:
    return _preloaded


def become_managed() -> None:
    """Worker only, right after the fork: the master replaces this process on a publish."""
    global _managed
    _managed = True


def managed() -> bool:
    return _managed
