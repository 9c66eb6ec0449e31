"""What signing in as an officer costs a desk on the server (issue 12). Prints medians and ratios;
a benchmark, not a test.

    .venv/bin/python benchmarks/bench_roles.py [--runs 15] [--db postgresql:///bench_desk]
        [--login bench_officer] [--password bench]

On the ~1.2 M-incident server database bench_postgres.py builds (upgraded with `db upgrade`, given
its roles with `db roles init`, and a desk login granted with `db roles grant LOGIN desk --officer N`),
`check` and `record` run as whole processes, alternating:
  - as the schema's owner (no role to look up: what issue 11 measured);
  - as an officer's own desk login over TCP (the role checked before anything is done, the
    collar number read from the server, every write stamped, numbered and sealed by the
    server's functions as the owner);
  - and a bare Typer app, the yardstick.
(The bench_desk database was built mid-session by a pre-release schema: four of its trigger
functions, issued_incidents, issued_referrals, decisions_kept and audit_salts_kept, are not the
release's, and `db upgrade` leaves them as they are; make them SECURITY DEFINER by hand first.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench_desk import BARE, WORK, compile_bytecode  # same folder: run as a script
from bench_postgres import BIN, letters, load, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", default="postgresql:///bench_desk")
    parser.add_argument("--login", default="bench_officer")
    parser.add_argument("--password", default="bench")
    args = parser.parse_args()
    compile_bytecode()
    name = args.db.rsplit("/", 1)[1]
    officer_db = f"postgresql://{args.login}@localhost/{name}"
    bare = WORK / "bare_typer.py"
    bare.write_text(BARE)
    owner_env = {**os.environ, "DIVERSION_OFFICER": "7000"}
    officer_env = {**os.environ, "PGPASSWORD": args.password}
    officer_env.pop("DIVERSION_OFFICER", None)
    tag = letters(time.time_ns() // 1000, 4)
    commands = {
        "bare Typer app": (lambda n: [sys.executable, str(bare), "noop"], owner_env),
        "check (owner)": (lambda n: [str(BIN), "--db", args.db, "check", f"P-{1000 + n:06d}"], owner_env),
        "check (desk login)": (lambda n: [str(BIN), "--db", officer_db, "check", f"P-{2000 + n:06d}"], officer_env),
        "record (owner)": (lambda n: [str(BIN), "--db", args.db, "record", "--surname", f"Owner{tag}{letters(n, 3)}",
                                      "--forename", "Desk", "--dob", "1980-01-01", "--substance", "weed",
                                      "--not-duplicate"], owner_env),
        "record (desk login)": (lambda n: [str(BIN), "--db", officer_db, "record", "--surname",
                                           f"Officer{tag}{letters(n, 3)}", "--forename", "Desk", "--dob", "1980-01-01",
                                           "--substance", "weed", "--not-duplicate"], officer_env),
    }
    for make, env in commands.values():  # page cache, .pyc files, the server's buffers
        timed(make(args.runs), env)
    samples: dict[str, list[float]] = {n: [] for n in commands}
    names = list(commands)
    print(f"{args.runs} runs each, alternating; {load()}")
    for n in range(args.runs):
        shift = n % len(names)
        for label in names[shift:] + names[:shift]:
            make, env = commands[label]
            samples[label].append(timed(make(n), env, ok=(0,) if label.startswith("record") else (0, 1))[0])
    medians = {label: statistics.median(s) for label, s in samples.items()}
    bare_s = medians["bare Typer app"]
    for label, median in medians.items():
        print(f"{label:<22} {median * 1000:7.0f} ms   {median / bare_s:5.2f}x bare Typer")
    for command in ("check", "record"):
        print(f"{command}: desk login / owner = {medians[f'{command} (desk login)'] / medians[f'{command} (owner)']:.2f}")
    print(load())


if __name__ == "__main__":
    main()
