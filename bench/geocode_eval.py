"""Geocoding addresses (issue 17 §4): the evaluation set's precision and recall per precision
level, and speed — `Gazetteer.geocode` per second on the demo street and at district scale
(400,000 buildings), against the matcher it replaces (`AddressIndex.match`) in the same process.

`python -m bench.geocode_eval [--quick] [--no-district] [--examples]`; results in
bench/results/geocode.md and geocode.json. Scoring rules: bench/geocode_score.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from api.geocode.rows import GazetteerRows
from api.settings import get_settings
from bench.common import RESULTS, active_index, demo_database, engine, write_result
from bench.geocode_cases import Case, dev_texts, make_cases
from bench.geocode_score import LEVELS, THRESHOLD, Outcome, failures, score, tables, true_grids

DISTRICT_DB = "wangge_bench_district20"
DEMO_DB = "wangge_bench_geocode"  # the demo street with its gazetteer, made when missing
BASELINE_SAMPLE = 300  # the old matcher scans the register: a sample is enough for its rate


def demo_street_database() -> Engine:
    """The configured database when it holds a gazetteer, else `bench_database()`."""
    db = engine()
    if _has_gazetteer(db):
        return db
    db.dispose()
    return bench_database()


def bench_database() -> Engine:
    """`wangge_bench_geocode`: the demo street and its gazetteer, loaded afresh
    (bench.common.demo_database) when missing, kept for the next run."""
    db = create_engine(get_settings().cluster.url(database=DEMO_DB))
    if _has_gazetteer(db):
        return db
    db.dispose()
    return demo_database(DEMO_DB)


def _has_gazetteer(db: Engine) -> bool:
    try:
        with db.connect() as connection:
            return bool(connection.execute(text("SELECT count(*) FROM compound")).scalar_one())
    except SQLAlchemyError:
        return False


def load_rows(db: Engine) -> GazetteerRows:
    from api.db.gazetteer import load_gazetteer

    with db.connect() as connection:
        return load_gazetteer(connection)


@dataclass(frozen=True)
class _Answer:  # the old matcher's answer, shaped like a PlaceMatch
    precision: str
    code: str
    name: str
    confidence: float
    samples_lon: np.ndarray
    samples_lat: np.ndarray


class Baseline:
    """The old matcher (`bench.address_baseline.AddressIndex`, buildings only) behind the
    Gazetteer's calls."""

    def __init__(self, rows: GazetteerRows) -> None:
        from bench.address_baseline import AddressIndex

        b = rows.buildings
        self.index = AddressIndex(b.codes, b.addresses, b.lon, b.lat)

    def geocode(self, query: str, limit: int = 5) -> Any:
        found = self.index.match(query[:500], limit=limit)
        candidates = [
            _Answer(
                "building",
                self.index.codes[m.index],
                self.index.addresses[m.index],
                m.confidence,
                self.index.lon[m.index : m.index + 1],
                self.index.lat[m.index : m.index + 1],
            )
            for m in found
        ]
        return _Result(candidates)


@dataclass
class _Result:
    candidates: list[Any]
    relative: dict | None = None


@dataclass
class Run:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds else 0.0


def evaluate(
    matcher: Any, cases: list[Case], grids: list[str | None], index: Any, name: str
) -> Run:
    run = Run(name)
    answers = []
    started = time.perf_counter()
    for case in cases:
        answers.append(matcher.geocode(case.text, limit=5))
    run.seconds = time.perf_counter() - started
    for case, answer, grid in zip(cases, answers, grids, strict=True):
        run.outcomes.append(score(case, answer.candidates, answer.relative, index, grid))
    return run


def geocode_rate(matcher: Any, texts: list[str], repeat: int = 2) -> float:
    """Queries per second, best of `repeat` passes over `texts` (one core, this process)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for t in texts:
            matcher.geocode(t, limit=5)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def level_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| precision level | cases | right | coarser | wrong | unanswered | recall | "
        "recall (top 5, any confidence) | answers at this level | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in (*LEVELS, "none"):
        row = result["levels"][level]
        lines.append(
            f"| {level} | {row['cases']:,} | {row['right']:,} | {row['coarser']:,} | "
            f"{row['wrong']:,} | {row['unanswered']:,} | {_pct(row['recall'])} | "
            f"{_pct(row['recall_top5'])} | {row['answers']:,} | {_pct(row['precision'])} |"
        )
    o = result["overall"]
    lines.append(
        f"| **all** | {o['cases']:,} | | | {o['wrong']:,} | | {_pct(o['recall'])} | | "
        f"{o['answers']:,} | {_pct(o['precision'])} |"
    )
    return lines


def confusion_table(result: dict[str, Any]) -> list[str]:
    columns = [*LEVELS, "—"]
    lines = [
        "| case ＼ answer | " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for level in (*LEVELS, "none"):
        row = result["confusion"].get(level, {})
        lines.append(f"| {level} | " + " | ".join(str(row.get(c, 0)) for c in columns) + " |")
    return lines


def grid_lines(result: dict[str, Any]) -> list[str]:
    g = result["grid"]
    one = g["one_grid_cases"] or 1
    return [
        f"- Places inside one grid ({g['one_grid_cases']:,} cases): right grid "
        f"{g['right_grid'] / one:.1%}, manual dispatch {g['manual'] / one:.1%}, "
        f"**wrong grid {g['wrong_grid'] / one:.1%}** ({g['wrong_grid']}).",
        f"- Places spanning grids (intersections, roads, communities, some compounds; "
        f"{g['spread_cases']:,} cases): manual dispatch {g['spread_manual']:,}, one grid asserted "
        f"{g['spread_one_grid_asserted']:,}.",
        f"- Texts with no place given a grid: {g['none_cases_given_a_grid']}.",
    ]


def variant_lines(result: dict[str, Any], minimum: int = 15) -> list[str]:
    lines = [
        "| variant | cases | recall | coarser | wrong (none/…: answered at all) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in result["variants"].items():
        if row["cases"] >= minimum and (row["recall"] is not None or name.startswith("none/")):
            lines.append(
                f"| {name} | {row['cases']:,} | {_pct(row['recall'])} | {row['coarser']} | "
                f"{row['wrong']} |"
            )
    return lines


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def demo(quick: bool) -> tuple[list[str], dict[str, Any]]:
    from api.geocode.index import Gazetteer

    db = demo_street_database()
    rows = load_rows(db)
    index = active_index(db)
    database = db.url.database
    excluded = dev_texts()
    cases = make_cases(rows, scale=0.25 if quick else 1.0, exclude=excluded)
    started = time.perf_counter()
    gazetteer = Gazetteer.build(rows)
    build_s = time.perf_counter() - started
    compounds = {c.code: c.geom for c in rows.compounds}
    grids = true_grids(cases, index, compounds)
    run = evaluate(gazetteer, cases, grids, index, "Gazetteer")
    result = tables(run.outcomes)
    texts = [c.text for c in cases]
    rate = geocode_rate(gazetteer, texts)
    baseline = Baseline(rows)
    sample = [c for c in cases if c.level != "none"][:: max(1, len(cases) // BASELINE_SAMPLE)]
    base_run = evaluate(baseline, sample, true_grids(sample, index, compounds), index, "old")
    base_rate = geocode_rate(baseline, [c.text for c in sample], repeat=1)
    same = evaluate(gazetteer, sample, true_grids(sample, index, compounds), index, "new")
    lines = [
        f"## Geocoding addresses (issue 17): {len(cases):,} cases from the demo street's "
        f"gazetteer ({database})",
        "",
        f"Gazetteer: {_counts(gazetteer)}; built in {build_s:.2f} s. Threshold {THRESHOLD}. "
        f"{len(excluded)} development texts excluded (tests/geocode_dev_cases.py).",
        "",
        *level_table(result),
        "",
        "Levels confused (rows: the case's level; columns: the answer's, — = none at the "
        "threshold):",
        "",
        *confusion_table(result),
        "",
        "Grid:",
        "",
        *grid_lines(result),
        "",
        f"Relative phrases: direction found in {result['relative']['direction_found']} of "
        f"{result['relative']['cases']} cases; a relative read into "
        f"{result['relative']['spurious_on_plain_cases']} cases without one.",
        "",
        "| speed (one core, in-process) | addresses/s |",
        "| --- | ---: |",
        f"| `Gazetteer.geocode`, all {len(texts):,} texts | {rate:,.0f} |",
        f"| old `AddressIndex.match` (buildings only), {len(sample)} texts | {base_rate:,.0f} |",
        "",
        f"New / old: {rate / base_rate:.0f}× the speed. On the same {len(sample)} placeable "
        f"texts the old matcher is right for "
        f"{_pct(tables(base_run.outcomes)['overall']['recall'])} (it knows buildings only), "
        f"the new one for {_pct(tables(same.outcomes)['overall']['recall'])}.",
        "",
        "Recall per variant (≥ 15 cases; `+tag` rows: every case carrying that tag):",
        "",
        *variant_lines(result),
    ]
    payload = {
        "cases": len(cases),
        "build_s": build_s,
        "rate": rate,
        "baseline_rate": base_rate,
        "same_texts": len(sample),
        "baseline_recall": tables(base_run.outcomes)["overall"]["recall"],
        "recall_on_same_texts": tables(same.outcomes)["overall"]["recall"],
        "excluded_dev_texts": len(excluded),
        **result,
        "failures": failures(run.outcomes),
    }
    return lines, payload


def _counts(gazetteer: Any) -> str:
    counts = getattr(gazetteer, "counts", {}) or {}
    return ", ".join(f"{v:,} {k}" for k, v in counts.items())


def district(quick: bool) -> tuple[list[str], dict[str, Any]]:
    """At district scale: load + build, rate, and accuracy on a smaller set of its own."""
    import resource

    from api.geocode.index import Gazetteer

    db = create_engine(get_settings().cluster.url(database=DISTRICT_DB))
    if not _has_gazetteer(db):  # bench/district.py builds it; `replace_demo_gazetteer` fills it
        return [f"District: skipped, {DISTRICT_DB} is missing or holds no gazetteer."], {}
    started = time.perf_counter()
    rows = load_rows(db)
    load_s = time.perf_counter() - started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    gazetteer = Gazetteer.build(rows)
    build_s = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cases = make_cases(rows, scale=0.1 if quick else 0.5, exclude=dev_texts())
    from bench.common import active_index as _active

    index = _active(db)
    grids = true_grids(cases, index, {c.code: c.geom for c in rows.compounds})
    run = evaluate(gazetteer, cases, grids, index, "district")
    result = tables(run.outcomes)
    rate = geocode_rate(gazetteer, [c.text for c in cases])
    started = time.perf_counter()
    baseline = Baseline(rows)
    base_build_s = time.perf_counter() - started
    sample = [c.text for c in cases if c.level != "none"][:: max(1, len(cases) // 40)]
    base_rate = geocode_rate(baseline, sample, repeat=1)
    buildings = len(rows.buildings.codes)
    lines = [
        f"### At district scale: {DISTRICT_DB} ({buildings:,} buildings, "
        f"{len(rows.compounds):,} compounds)",
        "",
        "| measure | figure | goal |",
        "| --- | ---: | --- |",
        f"| `load_gazetteer` (SQL) | {load_s:.1f} s | |",
        f"| `Gazetteer.build` | {build_s:.1f} s (peak RSS +{(rss_after - rss_before) / 1024:,.0f} MB) | |",
        f"| `Gazetteer.geocode`, {len(cases):,} texts | {rate:,.0f} /s | ≥ 500 /s |",
        f"| old `AddressIndex.match` (built in {base_build_s:.1f} s), {len(sample)} texts | "
        f"{base_rate:,.1f} /s | |",
        f"| new / old | {rate / base_rate:,.0f}× | |",
        "",
        *level_table(result),
        "",
        *grid_lines(result),
    ]
    db.dispose()
    return lines, {"buildings": buildings, "load_s": load_s, "build_s": build_s, "rate": rate,
                   "baseline_rate": base_rate, "rss_mb": (rss_after - rss_before) / 1024,
                   **result, "failures": failures(run.outcomes)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the cases")
    parser.add_argument("--no-district", action="store_true")
    parser.add_argument("--examples", action="store_true", help="print failing examples")
    args = parser.parse_args(
        argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else []
    )
    lines, payload = demo(args.quick)
    if not args.no_district:
        more, district_payload = district(args.quick)
        lines += ["", *more]
        payload["district"] = district_payload
    write_result("geocode", lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "geocode.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1))
    if args.examples:
        for family, examples in payload["failures"].items():
            print(family)
            for example in examples:
                print("   ", example)


if __name__ == "__main__":
    main()
