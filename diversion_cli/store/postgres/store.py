"""The store on a PostgreSQL server: what differs from SQLite's (store/sqlite.py)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from diversion_cli.errors import BadInput, NotFound, NotPermitted, Refused, StoreUnusable
from diversion_cli.store.base import Store
from diversion_cli.store.postgres import (ENGINE, WRITE_LOCK, PostgresTarget, _identifier, _interrupted, connect,
                                          driver_errors, unusable)


class PostgresStore(Store):
    """One open database on a PostgreSQL server."""

    engine = ENGINE
    LOGIN = "t.login"  # the trail names the login that made each transaction
    ADD_MONTHS = "diversion_add_months(since, {})"  # schema.py: SQLite's definition

    @classmethod
    def create(cls, target: PostgresTarget) -> Store:
        """`db init` on a server: build the schema in the database the force's DBA made
        (an empty one: never over tables that are there)."""
        from diversion_cli.store.common import _iso
        from diversion_cli.store.postgres import schema

        conn = connect(target)
        try:
            conn.execute("BEGIN")
            conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            there = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()[0]
            if there:
                raise Refused(f"something already exists at {target} (it holds tables): `diversion db init` "
                              f"never creates a database over it (give it an empty database)")
            here = conn.execute("SELECT current_schema()").fetchone()[0]
            if here is None:
                raise Refused(f"{target} has no schema to create diversion's tables in (check the login's "
                              f"search_path)")
            # the functions keep this search path (schema.ddl): the schema's tables, never a temporary one
            conn.execute(f"SET LOCAL search_path = {_identifier(here)}, pg_temp")
            conn.raw.execute(schema.ddl())
            conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                         (schema.VERSION, "PostgreSQL schema", _iso(datetime.now())))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            if isinstance(exc, driver_errors()[0]):
                raise unusable(exc, target) from None
            raise
        return cls._ready(target, conn, write=True)

    @classmethod
    def open(cls, target: PostgresTarget, write: bool = False) -> Store:
        return cls._ready(target, connect(target), write)

    @classmethod
    def _ready(cls, target, conn, write: bool, new: bool = False) -> Store:
        store = cls(target, conn)
        try:
            store._diversion_schema(write)
            store._audited = True
        except BaseException as exc:
            login = conn.raw.info.user
            conn.close()
            import psycopg.errors as e

            if isinstance(exc, e.InsufficientPrivilege):  # it may not even read the schema's version
                raise NotPermitted(f"login {login} has no diversion role on {target}: an admin grants one with "
                                   f"`diversion db roles grant {login} ROLE --officer N`") from None
            if isinstance(exc, driver_errors()[0]):
                raise unusable(exc, target) from None
            raise
        return store

    def _diversion_schema(self, write: bool = False) -> int:
        if self.conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
            raise StoreUnusable(f"no database at {self.path} (no diversion schema): create one with `diversion db init` "
                                f"(in an empty database), or check --db / DIVERSION_DB")
        from diversion_cli.store.postgres import schema

        version = self.schema_version()
        if version > schema.VERSION:  # as on a file: the desk's diversion is the one out of date
            raise StoreUnusable(f"the database {self.path} has schema version {version}, newer than this "
                                f"diversion understands ({schema.VERSION}); upgrade diversion before using it")
        if version < schema.VERSION and write and version >= schema.FIRST:
            return self._upgrade(version)
        if version != schema.VERSION:
            raise StoreUnusable(f"the database {self.path} has schema version {version}; this diversion "
                                f"needs {schema.VERSION}: the schema's owner runs `diversion db upgrade` (then "
                                f"`diversion db roles init`)")
        return version

    def _upgrade(self, version: int) -> int:
        """Bring the schema up to this diversion's, in one transaction (the schema's owner's: a
        desk's login may not change it, and is told who may)."""
        import psycopg.errors as e

        from diversion_cli.store.common import _iso
        from diversion_cli.store.postgres import schema

        try:
            self._begin_write()
            version = self.schema_version()  # (another desk may have just done it)
            if version < schema.VERSION:
                here = self.conn.execute("SELECT current_schema()").fetchone()[0]
                self.conn.execute(f"SET LOCAL search_path = {_identifier(here)}, pg_temp")  # (schema.ddl)
                self.conn.raw.execute(schema.upgrade_from(version))
                self.conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                                  (schema.VERSION, "roles: a login per officer", _iso(datetime.now())))
                self.upgraded_from = version
            self.conn.execute("COMMIT")
        except e.InsufficientPrivilege:
            self.conn.execute("ROLLBACK")
            raise StoreUnusable(f"the database {self.path} has schema version {version}; this diversion needs "
                                f"{schema.VERSION}: the schema's owner runs `diversion db upgrade` (then `diversion "
                                f"db roles init`); nothing was written") from None
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return schema.VERSION

    def _begin_write(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    def _begin_read(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _errors(self) -> tuple[tuple[type, ...], tuple[type, ...]]:
        return driver_errors()

    def _unusable(self, exc: Exception) -> BaseException:
        if _interrupted(exc):  # Ctrl-C reached psycopg mid-statement: the officer's, exit 130
            return KeyboardInterrupt()
        return unusable(exc, self.path)

    def integrity_check(self) -> list[str]:
        """The server keeps its own pages (checksums, WAL): what diversion can check is that
        its schema is whole and no index is left invalid by a failed build."""
        invalid = [f"index {row[0]} is invalid: REINDEX it" for row in self.conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND NOT (i.indisvalid AND i.indisready)")]
        return invalid or ["ok"]

    def status(self) -> dict:
        info = super().status()
        info["size_bytes"] = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        info["server"] = self.conn.execute("SHOW server_version").fetchone()[0]
        info["warnings"] = self.logging_warnings()
        return info

    # what the server's log would hold of a failing or slow statement (its values: names,
    # dates of birth), and the setting that keeps them out (README, "A shared server")
    SAFE_LOGGING = {"log_min_error_statement": ("log", "fatal", "panic"), "log_statement": ("none",),
                    "log_min_duration_statement": ("-1",),
                    # an error's DETAIL line holds the values (Key (pnc)=(...) already exists)
                    "log_error_verbosity": ("terse",)}

    def logging_warnings(self) -> list[str]:
        found = {name: self.conn.execute(f"SHOW {name}").fetchone()[0] for name in self.SAFE_LOGGING}
        return [f"the server logs statements with their values ({name} = {value}): personal data would reach "
                f"its log; set it to {self.SAFE_LOGGING[name][-1]} for this database (README)"
                for name, value in found.items() if value not in self.SAFE_LOGGING[name]]

    def after_erasure(self) -> str | None:
        # the server keeps dead row versions until their space is reused, and its WAL until
        # recycled (and archived WAL and backups for as long as they are kept)
        return ("the erased rows are gone from every table, but the server keeps their old versions in its data "
                "files until the space is reused, and in its WAL, WAL archive and backups until they expire: "
                "a DBA runs VACUUM FULL on people, incidents, incident_substances, incident_co_offences, "
                "decisions, referrals, referral_conditions, audit_entries and audit_pending at a quiet time "
                "(README, 'A shared server')")

    @contextmanager
    def _briefly_locked(self):
        self.conn.execute("BEGIN")
        self.conn.execute("SET LOCAL lock_timeout = '200ms'")  # never hold a report up behind a writer
        self.conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        yield

    def verify_audit(self) -> dict:
        from diversion_cli.store import audit

        result = audit.verify(self.conn, reopen=lambda: connect(self.path))
        result["report_cache_checked"] = self.check_report_cache()
        return result


    # ---- who is signed in, and the roles (store/postgres/roles.py) ----------------------

    def identity(self) -> dict:
        """This login: its name, the collar number mapped to it, whether it owns the schema
        (the force's DBA: every right), and the diversion roles it holds, directly or through
        another."""
        from diversion_cli.store.postgres.roles import GROUPS

        who = self._one(
            "SELECT session_user::text AS login, (SELECT o.officer FROM officer_logins o WHERE o.login = session_user) "
            "AS officer, pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = 'migrations'::regclass), "
            "'USAGE') AS owner, ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.rolname = ANY(?) "
            "AND pg_has_role(session_user, r.oid, 'USAGE')) AS held", (list(GROUPS.values()),))
        held = who.pop("held")
        return {**who, "roles": [role for role, group in GROUPS.items() if group in held]}

    def supervises(self, collar: str) -> bool | None:
        """Whether a collar number is a supervisor's on this server (its login holds the role); None
        on a server whose roles are not set up (its owner alone uses it)."""
        from diversion_cli.store.postgres.roles import GROUPS

        return self._one(
            "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM officer_logins) THEN NULL ELSE EXISTS ("
            "SELECT 1 FROM officer_logins o JOIN pg_roles m ON m.rolname = o.login JOIN pg_roles g ON g.rolname = ? "
            "WHERE o.officer = ? AND pg_has_role(m.oid, g.oid, 'USAGE')) END AS supervises",
            (GROUPS["supervisor"], collar))["supervises"]

    def accept_outside_changes(self) -> int:
        # a server knows whose the waiting changes were (each names its session's login): the trail says so
        made_by = self._one("SELECT string_agg(DISTINCT login, ', ') AS logins FROM audit_pending")["logins"]
        if made_by:
            self.note(f"made by login {made_by}")
        return super().accept_outside_changes()

    def may_read(self, table: str) -> bool:
        return self._one("SELECT has_table_privilege(?, 'SELECT') AS may", (table,))["may"]

    @contextmanager
    def _bookkeeping(self, refused: str | None = None):
        """A transaction of the roles' bookkeeping: the server's own record of who may do what, kept
        beside the trail (its log, officer_logins, one_shot_scopes), not in it. `refused`: what
        to say if this login may not."""
        try:
            self.conn.execute("BEGIN")
            yield
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, self._errors()[0]):
                if refused and type(exc).__name__ == "InsufficientPrivilege":
                    raise NotPermitted(refused) from None
                raise self._unusable(exc) from None
            raise

    def init_roles(self) -> None:
        """Make the group roles (if this server has none yet: that needs CREATEROLE), grant each its
        rights on this database's schema, and on the database itself when this login owns it: only
        the groups connect, and the admins may build verify's scratch schema."""
        from diversion_cli.store.postgres import roles

        if not self.identity()["owner"]:
            raise NotPermitted("`db roles init` grants the rights on the schema's tables, which only the schema's "
                               "owner (the force's DBA) may do; nothing was changed")
        here, database, owns_database = self._one(
            "SELECT current_schema() AS here, current_database() AS db, "
            "has_database_privilege(current_database(), 'CREATE WITH GRANT OPTION') AS owns").values()
        with self._bookkeeping(refused="making the group roles needs the schema's owner to have CREATEROLE (the "
                                       "force's DBA); nothing was changed"):
            self.conn.raw.execute(roles.create_groups())
            self.conn.raw.execute(roles.grants().replace("{schema}", _identifier(here)))
            if owns_database:
                self.conn.raw.execute(roles.database_grants(_identifier(database)))

    def pin_schemes(self, scopes: list[tuple[str, str, int]], at: str) -> list[dict]:
        """Pin each scheme's one-shot scope (scheme, group, look-back years) as the server's, which
        every referral must then carry; returns the pinned scopes that changed or are new."""
        changed = []
        with self._bookkeeping():
            for scheme, group, years in scopes:
                was = self._one("SELECT one_shot_group, lookback_years FROM one_shot_scopes WHERE scheme = ?",
                                (scheme,))
                if was is None or tuple(was.values()) != (group, years):
                    changed.append({"scheme": scheme, "one_shot_group": group, "lookback_years": years,
                                    "was": was})
                    self.conn.execute(
                        "INSERT INTO one_shot_scopes (scheme, one_shot_group, lookback_years, pinned_at, pinned_by) "
                        "VALUES (?, ?, ?, ?, session_user) ON CONFLICT (scheme) DO UPDATE SET "
                        "one_shot_group = excluded.one_shot_group, lookback_years = excluded.lookback_years, "
                        "pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by", (scheme, group, years, at))
        return changed

    def sharing_roles(self) -> list[str]:
        """The other databases on this server that let diversion's group roles connect: the roles are
        the cluster's, so a role granted (or revoked) for one of them is granted (or revoked) here."""
        from diversion_cli.store.postgres.roles import GROUPS

        return [row[0] for row in self.conn.execute(
            "SELECT d.datname::text FROM pg_database d WHERE d.datname != current_database() AND EXISTS ("
            "SELECT 1 FROM aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = ANY(?)) "
            "ORDER BY 1", (list(GROUPS.values()),))]

    def logins(self) -> list[dict]:
        """Every login holding a diversion role, with the roles granted to it and its collar number."""
        from diversion_cli.store.postgres.roles import GROUPS

        rows = self._all(
            "SELECT m.rolname::text AS login, g.rolname::text AS grp, o.officer FROM pg_auth_members a "
            "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
            "LEFT JOIN officer_logins o ON o.login = m.rolname WHERE g.rolname = ANY(?) AND m.rolcanlogin "
            "ORDER BY 1, 2", (list(GROUPS.values()),))
        named = {group: role for role, group in GROUPS.items()}
        out: dict[str, dict] = {}
        for row in rows:
            entry = out.setdefault(row["login"], {"login": row["login"], "officer": row["officer"], "roles": []})
            entry["roles"].append(named[row["grp"]])
        return list(out.values())

    def grant_role(self, login: str, role: str, officer: str | None, at: str) -> None:
        """Grant `login` a role and map it to its collar number, in one transaction."""
        from diversion_cli.store.postgres.roles import GROUPS

        self._login_there(login)
        with self._bookkeeping():
            if self._one("SELECT 1 FROM pg_roles WHERE rolname = ?", (GROUPS[role],)) is None:
                raise Refused(f"this server has no {role} role yet: run `diversion db roles init` first (the DBA)")
            mapped = self._one("SELECT officer FROM officer_logins WHERE login = ?", (login,))
            if officer is None and mapped is None and role != "analyst":
                raise BadInput("officer", f"{'an' if role == 'admin' else 'a'} {role} writes records stamped with a "
                                          f"collar number: give --officer N (the officer's own)")
            if officer is not None and mapped is not None and mapped["officer"] not in (None, officer):
                raise Refused(f"login {login} is officer {mapped['officer']}: a grant does not change its collar number "
                              f"(revoke its roles first, then grant them with the new one)")
            if officer is not None:
                taken = self._one("SELECT login FROM officer_logins WHERE officer = ? AND login != ?",
                                  (officer, login))
                if taken:
                    raise Refused(f"collar number {officer} is already login {taken['login']}'s: one login per "
                                  f"officer")
                self.conn.execute(
                    "INSERT INTO officer_logins (login, officer, granted_at, granted_by) "
                    "VALUES (?, ?, ?, session_user) ON CONFLICT (login) DO UPDATE SET officer = excluded.officer, "
                    "granted_at = excluded.granted_at, granted_by = excluded.granted_by", (login, officer, at))
            self.conn.execute(f"GRANT {GROUPS[role]} TO {_identifier(login)}")

    def revoke_role(self, login: str, role: str | None) -> list[str]:
        """Take a role (or every diversion role) from `login`; its collar number goes with its
        last role. Returns the roles it still holds."""
        from diversion_cli.store.postgres.roles import GROUPS

        self._login_there(login)
        with self._bookkeeping():
            held = next((e["roles"] for e in self.logins() if e["login"] == login), [])
            for name in held:  # (only those granted: an admin may not revoke the admin role it lacks)
                if role in (None, name):
                    self.conn.execute(f"REVOKE {GROUPS[name]} FROM {_identifier(login)}")
            left = [r for r in held if role not in (None, r)]
            if not left:
                self.conn.execute("DELETE FROM officer_logins WHERE login = ?", (login,))
        return left

    def _login_there(self, login: str) -> None:
        if self._one("SELECT 1 FROM pg_roles WHERE rolname = ? AND rolcanlogin", (login,)) is None:
            raise NotFound(f"no login {login!r} on this server: the DBA creates it (CREATE ROLE ... LOGIN, with the "
                           f"force's sign-in: README, 'Roles and logins')")
