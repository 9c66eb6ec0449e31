"""The store: every line of SQL in diversion lives in this package.

`Store` (base.py) is the one interface the rest of diversion calls, built from parts
by concern: core.py (transactions sealed into the audit trail, ids, status),
records.py (people, incidents, decisions, referrals), analytics.py (report figures,
their cache, exports) and loading.py (bulk import). An engine is one subclass and
what it needs: sqlite.py (the embedded default: a file) and postgres/ (a shared
server). audit.py seals and verifies the trail; migrations.py is SQLite's schema
history, postgres/schema.py the server's schema.
"""

from diversion_cli.store.base import Store
from diversion_cli.store.common import (DIGEST_BYTES, busy_timeout, database_errors, digest, integrity_errors,
                                        is_server, refusal_for, resolve_target)
# (a file's own: backups open a file with the key; verify rebuilds the file's expected schema)
from diversion_cli.store.sqlite import KEY_ENV, MIGRATIONS_TABLE, _statements, connect

__all__ = ["Store", "resolve_target", "is_server", "busy_timeout", "digest", "DIGEST_BYTES", "database_errors",
           "integrity_errors", "refusal_for", "connect", "KEY_ENV", "MIGRATIONS_TABLE", "_statements"]
