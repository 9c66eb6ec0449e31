"""The audit trail's weight and `audit verify`'s time on the big database. A
benchmark, not a test: prints figures and medians.

    .venv/bin/python benchmarks/bench_trail.py [--db bench-work/desk-1000000.db] [--runs 3]

1. Bytes per incident, all in: every table and index (SQLite's dbstat), split
   into the records, their indexes and the audit trail, and the trail's bytes
   per entry. Free pages (space a conversion or an erasure left, until
   `diversion db compact`) are shown apart and not counted.
2. `audit verify` in-process, median of N runs, and per stage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIL = ("audit_entries", "audit_transactions", "audit_salts", "audit_conversions", "audit_pending",
         "audit_entries_entity", "audit_entries_person", "audit_entries_deleted")


def weight(db: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    incidents = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    entries = conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
    transactions = conn.execute("SELECT count(*) FROM audit_transactions").fetchone()[0]
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    indexes |= {name for name in sizes if name.startswith("sqlite_autoindex")}
    trail = sum(v for k, v in sizes.items() if k in TRAIL)
    index_bytes = sum(v for k, v in sizes.items() if k in indexes and k not in TRAIL)
    records = sum(sizes.values()) - trail - index_bytes
    total = sum(sizes.values())
    print(f"{incidents:,} incidents, {entries:,} trail entries in {transactions:,} transactions")
    print(f"all in:   {total / 1e6:9,.1f} MB = {total / incidents:6,.0f} B/incident"
          f"   (free pages not counted: {free / 1e6:,.1f} MB)")
    print(f"records:  {records / 1e6:9,.1f} MB = {records / incidents:6,.0f} B/incident")
    print(f"indexes:  {index_bytes / 1e6:9,.1f} MB = {index_bytes / incidents:6,.0f} B/incident")
    print(f"trail:    {trail / 1e6:9,.1f} MB = {trail / incidents:6,.0f} B/incident, "
          f"{trail / max(entries, 1):,.0f} B/entry ({100 * trail / total:.0f}% of the file)")
    for name in sorted((k for k in sizes if k in TRAIL), key=lambda k: -sizes[k]):
        print(f"  {name:<24} {sizes[name] / 1e6:9,.1f} MB  {sizes[name] / max(entries, 1):6.1f} B/entry")
    conn.close()


def verify(db: Path, runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from diversion_cli.store import Store, audit

    stages = {"chain": audit._check_chain, "old values": audit._check_old_values,
              "erasures and ids": audit._check_erasures,
              "rows, first half": lambda conn: audit._check_rows(conn, audit.ROW_HALVES[0]),
              "rows, second half": lambda conn: audit._check_rows(conn, audit.ROW_HALVES[1]),
              "schema": audit.check_schema}
    store = Store.open(db)
    times: dict[str, list[float]] = {name: [] for name in ("whole", *stages)}
    for _ in range(runs):
        start = time.perf_counter()
        result = store.verify_audit()
        times["whole"].append(time.perf_counter() - start)
        for name, stage in stages.items():
            start = time.perf_counter()
            stage(store.conn)
            times[name].append(time.perf_counter() - start)
    store.close()
    print(f"audit verify: {result['entries']:,} entries, {result['rows_checked']:,} rows")
    for name, values in times.items():
        print(f"  {name:<18} median {statistics.median(values):7.2f} s  (runs: "
              f"{', '.join(f'{v:.2f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=str(ROOT / "bench-work" / "desk-1000000.db"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    db = Path(args.db)
    weight(db)
    verify(db, args.runs)


if __name__ == "__main__":
    main()
