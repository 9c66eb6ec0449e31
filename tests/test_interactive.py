"""`diversion record` at a terminal: it prompts for what the flags did not
give, re-asks on bad answers, and offers the near matches it finds. Driven
through a real pseudo-terminal, as an officer's keyboard would."""

from __future__ import annotations

import os
import signal
import pty
import select
import subprocess
import sys
import time

import pytest

from helpers import connect, count_rows, run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


class Terminal:
    def __init__(self, *args: str, env: dict | None = None):
        self.master, slave = pty.openpty()
        # Ctrl-C reaches the command as at a real desk even when the suite itself was started with
        # SIGINT ignored (in the background, under nohup): Python only handles it if not ignored
        self.proc = subprocess.Popen([sys.executable, "-m", "diversion_cli", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env or os.environ.copy(), close_fds=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 20) -> str:
        limit = time.monotonic() + timeout
        while text not in self.seen:
            left = limit - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {text!r}; screen so far:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    chunk = ""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {text!r}; screen:\n{self.seen}")
                self.seen += chunk
        return self.seen

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self, timeout: float = 20) -> int:
        limit = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < limit:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    break
        code = self.proc.wait(timeout=60)  # a loaded machine (two test workers) can be slow to end it
        os.close(self.master)
        return code


def test_prompts_for_everything_missing_and_reasks_on_bad_answers(db_path):
    env = {**os.environ}
    env.pop("DIVERSION_OFFICER")
    term = Terminal("record", env=env)
    term.expect("collar number")
    term.send("not a collar")
    term.expect("is not a collar number")          # re-asked, not crashed
    term.send("4471")
    term.expect("PNC ID")
    term.send("79/123456X")                         # wrong check letter
    term.expect("wrong check letter")
    term.send("")                                   # none
    term.expect("Surname")
    term.send("O'Neill")
    term.expect("Forename")
    term.send("Siobhán")
    term.expect("Date of birth")
    term.send("31/02/1990")                         # no such date
    term.expect("not a valid date")
    term.send("14/02/1990")
    term.expect("Gender")
    term.send("F")
    term.expect("ethnicity")
    term.send("W2")
    term.expect("Substance")
    term.send("weeed")
    term.expect("did you mean 'weed'")
    term.send("weed, coke")
    term.expect("Quantity")
    term.send("2 g")
    term.expect("Is intent to supply suspected?")
    term.send("")                                   # no (the default)
    term.expect("Another offence")
    term.send("")                                   # none
    term.expect("When")
    term.send("")                                   # now
    term.expect("Location")
    term.send("Cabot Circus")
    term.expect("Refer now")
    term.send("n")
    assert term.finish() == 0, term.seen
    assert "Recorded incident I-000001" in term.seen
    checked = run("check", "--surname", "O'Neill", "--forename", "Siobhán", "--dob", "1990-02-14", "--json")
    assert '"forenames": "Siobhán"' in checked.stdout
    assert count_rows(db_path, "incident_substances") == 2


def test_near_match_at_the_desk_is_offered_and_can_be_taken(db_path):
    first = run("record", "--surname", "Smith", "--forename", "John", "--dob", "1990-02-14", "--substance", "weed",
                "--refer")
    assert first.exit_code == 0, first.stderr
    term = Terminal("record", "--substance", "coke", "--location", "Broadmead", "--when", "now")
    term.expect("PNC ID")
    term.send("")
    term.expect("Surname")
    term.send("Smyth")
    term.expect("Forename")
    term.send("Jon")
    term.expect("Date of birth")
    term.send("1990-02-14")
    term.expect("Same person as one of these?")
    assert "P-000001" in term.seen and "OPEN REFERRAL" in term.seen
    term.send("P-000009")                           # not one of those shown
    term.expect("answer with one of")
    term.send("P-000001")
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "people") == 1       # the same man, not a second record
    assert "NOT ELIGIBLE" in term.seen and "OPEN_REFERRAL" in term.seen


def test_dates_are_said_back_in_words_and_an_old_incident_is_confirmed(db_path):
    term = Terminal("record", "--surname", "Words", "--forename", "Wes", "--substance", "weed",
                    "--location", "Broadmead", "--gender", "M", "--ethnicity", "W1")
    term.expect("PNC ID")
    term.send("")
    term.expect("Date of birth")
    term.send("05/03/1990")
    term.expect("= Mon 5 Mar 1990")                 # 5 March, not 3 May: seen before it is written
    term.expect("When")
    term.send("03/01/2026 10:00")                   # meant 1 March? it is 3 January, weeks ago
    term.expect("= Sat 3 Jan 2026 10:00")
    term.expect("Is that right?")
    term.send("n")
    term.expect("When")
    term.send("now")
    term.expect("Refer now")
    term.send("n")
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "incidents") == 1


def test_a_pnc_belonging_to_someone_else_is_asked_about_at_the_desk(db_path):
    assert run("record", "--pnc", "1990/0123456K", "--surname", "Smith", "--forename", "John", "--dob",
               "14/02/1990", "--substance", "weed").exit_code == 0
    args = ("record", "--pnc", "1990/0123456K", "--surname", "Smyth", "--forename", "John", "--dob", "14/02/1990",
            "--substance", "coke", "--when", "now", "--location", "Broadmead")
    term = Terminal(*args)
    term.expect("is on record for P-000001")
    term.expect("Is this P-000001?")
    term.send("n")
    assert term.finish() == 1, term.seen
    assert "nothing was written" in term.seen and count_rows(db_path, "incidents") == 1
    term = Terminal(*args)
    term.expect("Is this P-000001?")
    term.send("y")
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "incidents") == 2 and count_rows(db_path, "people") == 1


def test_ctrl_d_at_a_prompt_is_interrupted_with_exit_130(db_path):
    term = Terminal("record", "--substance", "weed")
    term.expect("PNC ID")
    os.write(term.master, b"\x04")                   # Ctrl-D
    assert term.finish() == 130, term.seen
    assert "interrupted: nothing was written" in term.seen
    assert count_rows(db_path, "people") == 0


def test_a_near_match_is_asked_about_when_name_and_birth_date_came_as_flags(db_path):
    first = run("record", "--surname", "Okoro", "--forename", "Daniel", "--dob", "1999-02-14", "--substance", "weed",
                "--refer")
    assert first.exit_code == 0, first.stderr
    term = Terminal("record", "--surname", "Okoro", "--forename", "Danny", "--dob", "14/02/1999",
                    "--substance", "coke", "--when", "now", "--location", "Broadmead")
    term.expect("Same person as one of these?")     # asked, not refused after the prompts
    assert "P-000001" in term.seen and "OPEN REFERRAL" in term.seen
    term.send("N")                                  # someone else: said, and kept with the decision
    assert term.finish() == 0, term.seen
    assert count_rows(db_path, "people") == 2
    conn = connect(db_path)
    reasons = conn.execute("SELECT reasons FROM decisions WHERE incident_id = 2").fetchone()[0]
    conn.close()
    assert "NOT_SAME_PERSON" in reasons and "P-000001" in reasons
