"""`audit verify`'s schema check on PostgreSQL: the tables, columns, constraints,
indexes, triggers (and whether they are enabled), functions and views are exactly
what schema.py defines. The expected catalog is read from schema.py's DDL built in
a scratch schema inside a transaction that is rolled back, on the same server, so
both sides are described by the same server version in the same words.
"""

from __future__ import annotations

import functools

# (the first SELECT's column types are the union's: names as text, as `name` would cut them at 63 bytes)
CATALOG = """
SELECT 'table', c.relname::text, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' collate ' || co.collname, '')
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE WHEN a.attidentity != '' THEN ' identity ' || a.attidentity::text ELSE '' END, ', ' ORDER BY a.attnum)
       || CASE WHEN c.relrowsecurity THEN ' row-level-security' ELSE '' END
       || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation != 0
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')  -- a view's columns: its definition
GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity
UNION ALL
SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'index', i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE i.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'trigger', t.tgname || ' on ' || c.relname, pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_arguments(p.oid) || ')',
       pg_get_function_result(p.oid) || ' ' || p.prosrc || ' ' || p.provolatile::text || p.prosecdef::text
       || ' ' || coalesce(array_to_string(p.proconfig, ' '), '')
FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
UNION ALL
SELECT 'view', c.relname, pg_get_viewdef(c.oid)
FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'rule', r.rulename || ' on ' || c.relname, pg_get_ruledef(r.oid)
FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
WHERE c.relnamespace = current_schema()::regnamespace AND r.rulename != '_RETURN'
UNION ALL
SELECT 'policy', p.polname || ' on ' || c.relname, coalesce(pg_get_expr(p.polqual, p.polrelid), '')
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
WHERE c.relnamespace = current_schema()::regnamespace
UNION ALL
-- who may do what (roles.py): every right on a table, a column or a function, but its owner's
SELECT 'rights', c.relname, string_agg(x.right, ' ' ORDER BY x.right)
FROM pg_class c, LATERAL (SELECT coalesce(r.rolname, 'PUBLIC') || ':' || a.privilege_type
                                 || CASE WHEN a.is_grantable THEN '+' ELSE '' END AS right
                          FROM aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
                          WHERE a.grantee != c.relowner) x
WHERE c.relnamespace = current_schema()::regnamespace
GROUP BY c.relname
UNION ALL
SELECT 'rights', c.relname || '.' || t.attname, string_agg(x.right, ' ' ORDER BY x.right)
FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid,
     LATERAL (SELECT coalesce(r.rolname, 'PUBLIC') || ':' || a.privilege_type AS right
              FROM aclexplode(t.attacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE a.grantee != c.relowner) x
WHERE c.relnamespace = current_schema()::regnamespace
GROUP BY c.relname, t.attname
UNION ALL
SELECT 'rights', p.proname || '(' || pg_get_function_arguments(p.oid) || ')', string_agg(x.right, ' ' ORDER BY x.right)
FROM pg_proc p, LATERAL (SELECT coalesce(r.rolname, 'PUBLIC') || ':' || a.privilege_type AS right
                         FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE a.grantee != p.proowner) x
WHERE p.pronamespace = current_schema()::regnamespace
GROUP BY p.proname, p.oid
UNION ALL
-- everything belongs to the schema's owner (an object another role owns, it may change at will)
SELECT 'owner', c.relname, 'another role'
FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
AND c.relowner != (SELECT m.relowner FROM pg_class m WHERE m.oid = 'migrations'::regclass)
UNION ALL
SELECT 'owner', p.proname || '(' || pg_get_function_arguments(p.oid) || ')', 'another role'
FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
AND p.proowner != (SELECT m.relowner FROM pg_class m WHERE m.oid = 'migrations'::regclass)
"""


def _described(cursor, schema_name: str) -> dict[tuple[str, str], str]:
    return {(kind, name): " ".join((text or "").replace(f"{schema_name}.", "")
                                   .replace(f"search_path={schema_name},", "search_path=<schema>,")
                                   .replace(f'search_path="{schema_name}",', "search_path=<schema>,").split())
            for kind, name, text in cursor.execute(CATALOG).fetchall()}


@functools.cache
def expected(dsn: str, granted: bool) -> dict[tuple[str, str], str]:
    """schema.py's catalog as this server describes it (built and rolled back), with the
    roles' rights (roles.py) if this database has been given them."""
    import os

    import psycopg

    from diversion_cli.store.postgres.schema import ddl

    from diversion_cli.errors import StoreUnusable

    scratch = f"diversion_expected_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        try:
            try:
                conn.execute(f"CREATE SCHEMA {scratch}")
            except psycopg.errors.InsufficientPrivilege:
                raise StoreUnusable("audit verify on a server builds diversion's schema in a scratch schema it "
                                    "rolls back, to compare with this one: it needs a login that may create a "
                                    "schema in the database (its owner, or an auditor granted CREATE on it); "
                                    "nothing was written") from None
            conn.execute(f"SET LOCAL search_path TO {scratch}, pg_temp")
            conn.execute(ddl())
            if granted:
                from diversion_cli.store.postgres.roles import grants

                conn.execute(grants().replace("{schema}", scratch))
            return _described(conn.cursor(), scratch)
        finally:
            conn.execute("ROLLBACK")


def expected_and_found(conn) -> tuple[dict, dict]:
    """(what schema.py defines, what the database holds), as audit.check_schema compares them."""
    from diversion_cli.store.postgres.roles import GROUPS

    live_schema, granted = conn.execute(
        "SELECT current_schema(), has_table_privilege(?, 'migrations', 'SELECT') "
        "FROM pg_roles WHERE rolname = ? UNION ALL SELECT current_schema(), false LIMIT 1",
        (GROUPS["desk"], GROUPS["desk"])).fetchone()
    defined, found = dict(expected(conn.raw.info.dsn, granted)), _described(conn.raw.cursor(), live_schema)
    if granted:
        defined.update(_memberships_defined())
        found.update(_memberships(conn))
    return defined, found


# Roles PostgreSQL grants that see or change every table whatever its rights say: a diversion group,
# or an officer's login, holding one has rights no grant on the schema shows.
SWEEPING = ("pg_read_all_data", "pg_write_all_data", "pg_read_server_files", "pg_write_server_files",
            "pg_execute_server_program")


def _memberships_defined() -> dict[tuple[str, str], str]:
    from diversion_cli.store.postgres.roles import GROUPS, MEMBER_OF

    return {("membership", group): " ".join(sorted(GROUPS[below] for below in MEMBER_OF.get(role, ())))
            for role, group in GROUPS.items()}


def _memberships(conn) -> dict[tuple[str, str], str]:
    """The roles each diversion group is granted, and any login holding a diversion role that is a
    superuser, owns the schema's tables or holds a sweeping role."""
    from diversion_cli.store.postgres.roles import GROUPS

    found = dict.fromkeys((("membership", group) for group in GROUPS.values()), "")
    for group, granted in conn.execute(
            "SELECT m.rolname::text, string_agg(r.rolname::text, ' ' ORDER BY r.rolname::text COLLATE \"C\") "
            "FROM pg_auth_members a "
            "JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = ANY(?) "
            "GROUP BY m.rolname", (list(GROUPS.values()),)):
        found[("membership", group)] = granted
    for (login,) in conn.execute(
            "WITH RECURSIVE holders(oid) AS (SELECT a.member FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid "
            "WHERE g.rolname = ANY(?) UNION SELECT a.member FROM pg_auth_members a JOIN holders h ON a.roleid = h.oid) "
            "SELECT DISTINCT m.rolname::text FROM holders h JOIN pg_roles m ON m.oid = h.oid "
            "WHERE m.rolname != ALL(?) AND (m.rolsuper "
            "OR pg_has_role(m.oid, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'migrations'::regclass), 'USAGE') "
            "OR EXISTS (SELECT 1 FROM pg_roles s WHERE s.rolname = ANY(?) AND pg_has_role(m.oid, s.oid, 'MEMBER')))",
            (list(GROUPS.values()), list(GROUPS.values()), list(SWEEPING))):
        found[("membership", login)] = "sweeping"
    return found
