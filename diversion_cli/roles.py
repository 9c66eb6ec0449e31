"""Who may run what on a shared server: the five roles and the commands each runs (the
server enforces the same split on its tables: store/postgres/roles.py). On a SQLite file
there are no roles: it is one user's file, and its OS account is the identity.

    desk         record, check, refer; read people and incidents
    coordinator  the desk's, plus outcomes, conditions, letters and the work queue
    supervisor   the coordinator's, plus corrections, voids, early completions, the trail's history
    analyst      reports and pseudonymised exports only (no personal data)
    admin        everything: amend, erase, import, verify and accept, roles
"""

from __future__ import annotations

ROLES = ("desk", "coordinator", "supervisor", "analyst", "admin")  # (which includes which: the server's grants)

# command -> the roles that may run it (any one); a command not here is anyone's
COMMANDS = {
    "record": ("desk",), "check": ("desk",), "refer": ("desk",), "incidents": ("desk",), "incident": ("desk",),
    "referral": ("desk",),
    "outcome": ("coordinator",), "condition": ("coordinator",), "referrals": ("coordinator",),
    "letter": ("coordinator",),
    "void": ("supervisor",), "audit log": ("supervisor",),
    # (verify builds the schema in a scratch schema it rolls back: the admin may create one, `db roles init`)
    "audit verify": ("admin",), "audit anchor": ("admin",), "db check": ("admin",),
    "report": ("analyst", "supervisor"), "export": ("analyst", "supervisor"),
    "amend incident": ("admin",), "amend person": ("admin",), "db erase-person": ("admin",), "import": ("admin",),
    "audit accept": ("admin",), "db upgrade": ("admin",), "db roles list": ("admin",),
    "db roles grant": ("admin",), "db roles revoke": ("admin",), "db roles init": ("admin",),
    "db pin-schemes": ("admin",),
}
# commands that need no database there, or say for themselves what they may do
UNCHECKED = {"db init", "db upgrade", "db path", "db backup", "db restore", "db compact", "db migrate-to", "whoami", "schemes"}
# commands that write a record (they need a collar number: the login's)
WRITES = {"record", "refer", "outcome", "condition", "void", "amend incident", "amend person", "db erase-person",
          "import", "audit accept", "db upgrade"}


def needed(command: str, options: dict) -> tuple[str, ...]:
    """The roles, any one of which may run `command` with these options; () if anyone may."""
    if command in ("outcome", "condition") and options.get("supervisor"):
        return ("supervisor",)  # a correction, or an early completion
    if command == "outcome" and options.get("status") == "voided":
        return ("supervisor",)  # a voided referral gives the one shot back
    if command == "report" and options.get("by") and "location" in options["by"]:
        return ("supervisor",)  # locations are free text
    if command == "export" and not options.get("pseudonymise"):
        return ("supervisor",)  # names, dates of birth, PNC IDs
    return COMMANDS.get(command, ())

