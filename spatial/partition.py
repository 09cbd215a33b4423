"""Auto-suggest grids: cut a community's blocks into contiguous groups of 300–500 households.

Recursive spanning-tree bipartition, as in GerryChain's `recursive_tree_part`: draw a random
spanning tree of the blocks' adjacency graph, cut one tree edge whose subtree holds an allowed
number of households (and leaves a remainder that can still be divided), and repeat on the rest.
Cutting a tree always leaves both sides connected, so every proposed grid is contiguous. Several
proposals are drawn and the one with the shortest total internal boundary (the most compact) wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

# Blocks sharing less boundary than this (degrees, ~1 cm) merely touch at a corner.
MIN_SHARED_EDGE_DEG = 1e-7


class PartitionError(ValueError):
    """No partition within the household bounds exists or was found."""


@dataclass
class Partition:
    labels: np.ndarray  # block index → group number
    households: list[int]  # per group
    cut_length: float  # total boundary between groups (degrees): lower is more compact


def adjacency(blocks: np.ndarray) -> list[tuple[int, int, float]]:
    """Pairs of blocks sharing an edge, with the shared length."""
    tree = shapely.STRtree(blocks)
    left, right = tree.query(blocks, predicate="intersects")
    keep = left < right
    pairs = []
    for i, j in zip(left[keep], right[keep], strict=True):
        shared = shapely.length(shapely.intersection(blocks[i].boundary, blocks[j].boundary))
        if shared > MIN_SHARED_EDGE_DEG:
            pairs.append((int(i), int(j), float(shared)))
    return pairs


def group_count(total: int, low: int, high: int) -> int:
    """How many groups: the count nearest the middle of the bounds that the total allows."""
    feasible = [
        k
        for k in range(max(1, math.ceil(total / high)), total // low + 1)
        if low * k <= total <= high * k
    ]
    if not feasible:
        raise PartitionError(f"共 {total} 户，无法分成每组 {low}–{high} 户的若干组")
    target = total / ((low + high) / 2)
    return min(feasible, key=lambda k: abs(k - target))


def _random_spanning_tree(
    nodes: list[int], edges: list[tuple[int, int, float]], rng: np.random.Generator
) -> dict[int, list[int]]:
    """Kruskal on random weights over the edges inside `nodes`."""
    inside = set(nodes)
    candidates = [(i, j) for i, j, _ in edges if i in inside and j in inside]
    order = rng.permutation(len(candidates))
    parent = {n: n for n in nodes}

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    tree: dict[int, list[int]] = {n: [] for n in nodes}
    for index in order:
        i, j = candidates[index]
        a, b = root(i), root(j)
        if a != b:
            parent[a] = b
            tree[i].append(j)
            tree[j].append(i)
    if len({root(n) for n in nodes}) > 1:
        raise PartitionError("这些地块不连通（有飞地），无法划分为连续的网格")
    return tree


def _cut_once(
    nodes: list[int],
    edges: list[tuple[int, int, float]],
    households: np.ndarray,
    bounds: tuple[int, int],
    groups_left: int,
    rng: np.random.Generator,
    attempts: int,
) -> set[int]:
    """One group of blocks, split off so that the rest can still be divided."""
    low, high = bounds
    total = int(households[nodes].sum())
    for _ in range(attempts):
        tree = _random_spanning_tree(nodes, edges, rng)
        start = nodes[int(rng.integers(len(nodes)))]
        order, parent, seen = [start], {start: -1}, {start}
        for node in order:  # breadth-first: parents come before children
            for other in tree[node]:
                if other not in seen:
                    seen.add(other)
                    parent[other] = node
                    order.append(other)
        below = {n: int(households[n]) for n in nodes}
        for node in reversed(order[1:]):
            below[parent[node]] += below[node]
        rest_low, rest_high = (groups_left - 1) * low, (groups_left - 1) * high
        cuts = [
            n
            for n in order[1:]
            if low <= below[n] <= high and rest_low <= total - below[n] <= rest_high
        ]
        if cuts:
            cut = cuts[int(rng.integers(len(cuts)))]
            group, queue = {cut}, [cut]
            while queue:
                node = queue.pop()
                for other in tree[node]:
                    if other != parent[node] and other not in group:
                        group.add(other)
                        queue.append(other)
            return group
    raise PartitionError(
        f"尝试 {attempts} 次仍未找到满足 {low}–{high} 户的切分，请放宽户数范围或调整地块"
    )


def partition(
    blocks: np.ndarray,
    households: np.ndarray,
    bounds: tuple[int, int] = (300, 500),
    seed: int = 0,
    proposals: int = 12,
    attempts: int = 400,
) -> Partition:
    """Contiguous groups of blocks, each with households within `bounds`."""
    low, high = bounds
    households = np.asarray(households, dtype=np.int64)
    if len(blocks) == 0:
        raise PartitionError("没有可划分的地块")
    too_big = [i for i in range(len(blocks)) if households[i] > high]
    if too_big:
        raise PartitionError(f"有 {len(too_big)} 个地块本身就超过 {high} 户，无法整块划入一个网格")
    edges = adjacency(blocks)
    count = group_count(int(households.sum()), low, high)
    rng = np.random.default_rng(seed)
    best: Partition | None = None
    failure: PartitionError | None = None
    for _ in range(proposals):
        labels = np.full(len(blocks), -1)
        remaining = list(range(len(blocks)))
        try:
            for group in range(count - 1):
                chosen = _cut_once(
                    remaining, edges, households, bounds, count - group, rng, attempts
                )
                labels[list(chosen)] = group
                remaining = [n for n in remaining if n not in chosen]
        except PartitionError as error:  # this proposal painted itself into a corner
            failure = error
            continue
        labels[remaining] = count - 1
        cut_length = sum(length for i, j, length in edges if labels[i] != labels[j])
        if best is None or cut_length < best.cut_length:
            sums = [int(households[labels == g].sum()) for g in range(count)]
            best = Partition(labels, sums, cut_length)
    if best is None:
        raise failure or PartitionError("没有找到可行的划分")
    return best


def building_blocks(area: shapely.Geometry, buildings: np.ndarray) -> np.ndarray:
    """Blocks for an area without micro-grids: one Voronoi cell per building, clipped to the area.

    Grid boundaries drawn along these cells pass between buildings, never through them.
    """
    points = shapely.point_on_surface(buildings)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=area, ordered=True)
    )
    return shapely.intersection(cells, area)
