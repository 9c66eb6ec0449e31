"""The Store: one interface, whatever the engine. Its parts by concern (core.py:
transactions, the trail, ids; records.py; analytics.py; loading.py), and an engine
subclass for how a database is opened, locked and looked after: store/sqlite.py (the
embedded default) or store/postgres (a shared server). Domain code calls only this.
"""

from __future__ import annotations

from diversion_cli.store.analytics import Analytics
from diversion_cli.store.common import is_server, resolve_target
from diversion_cli.store.core import StoreCore
from diversion_cli.store.loading import BulkLoading
from diversion_cli.store.records import Records


class Store(StoreCore, Records, Analytics, BulkLoading):
    """One open database."""

    engine: str

    @staticmethod
    def engine_for(target):
        """The Store subclass of the target's engine (PostgreSQL's is imported only for a server)."""
        if is_server(target):
            from diversion_cli.store import postgres

            return postgres.store_class()
        from diversion_cli.store.sqlite import SqliteStore

        return SqliteStore

    @classmethod
    def create(cls, target) -> Store:
        """Create a new database and build its schema: `diversion db init`, the only way a
        database comes into being."""
        target = resolve_target(target) if isinstance(target, str) else target
        return Store.engine_for(target).create(target)

    @classmethod
    def open(cls, target, write: bool = False) -> Store:
        """Open an existing database. A missing one is never an empty record: exit 4, nothing
        created. Reading never writes: only a write brings an older schema up to date."""
        target = resolve_target(target) if isinstance(target, str) else target
        return Store.engine_for(target).open(target, write)
