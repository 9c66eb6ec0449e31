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
from diversion_cli.store.common import (DEFAULT_BUSY_TIMEOUT, DIGEST_BYTES, MAX_BUSY_TIMEOUT, _iso, _json,
                                        busy_timeout, database_errors, default_db_path, digest, integrity_errors,
                                        is_server, refusal_for, resolve_target)
from diversion_cli.store.sqlite import (AUDIT_FROM, KEY_ENV, MIGRATIONS_TABLE, TRAIL_FROM, SqliteStore,
                                        _create_owner_only, _statements, _unusable, connect, driver)

__all__ = ["Store", "SqliteStore", "resolve_target", "is_server", "busy_timeout", "default_db_path", "digest",
           "DIGEST_BYTES", "database_errors", "integrity_errors", "refusal_for", "connect", "driver", "KEY_ENV",
           "MIGRATIONS_TABLE", "AUDIT_FROM", "TRAIL_FROM", "DEFAULT_BUSY_TIMEOUT", "MAX_BUSY_TIMEOUT", "_iso",
           "_json", "_statements", "_create_owner_only", "_unusable"]
