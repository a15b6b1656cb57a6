"""The versioned database schema.

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``; the schema version of
this crmlite is ``len(MIGRATIONS)``. The database records its version in ``meta``. A store
that opens a database made by an older crmlite upgrades it in place, in one transaction,
one migrator at a time; a database whose version is newer than this crmlite knows is
refused (:class:`SchemaVersionError`) and left untouched.

Migrations are append-only: a released step is never edited, a change is a new step.

The DDL is written once, with a few words that differ between the backends:
``{pk}`` (the 64-bit primary key type), ``{bigint}`` and ``{without_rowid}``. A step
that one backend alone needs is a ``{dialect: statement}`` dict. A step that rewrites
data by the engine's own rules is a function of the migrating transaction (a
:class:`~crmlite.store.base.Tx`), run where it stands among the statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crmlite.store.base import SchemaVersionError, Tx

Step = str | dict[str, str] | Callable[[Tx], None]

# First id handed out: record, user, module and field ids look like Zoho's 19-digit ids.
ID_BASE = 5_725_767_000_000_000_000

DIALECT_WORDS = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY", "bigint": "INTEGER", "without_rowid": "WITHOUT ROWID"},
    "postgresql": {"pk": "BIGINT PRIMARY KEY", "bigint": "BIGINT", "without_rowid": ""},
}

_V1: list[str | dict[str, str]] = [
    """CREATE TABLE orgs (
        id {pk},
        zgid TEXT NOT NULL,
        company_name TEXT NOT NULL,
        primary_email TEXT NOT NULL,
        time_zone TEXT NOT NULL,
        currency TEXT NOT NULL,
        created_time {bigint} NOT NULL,
        meta_version {bigint} NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE users (
        id {pk},
        org_id {bigint} NOT NULL,
        zuid TEXT NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT,
        last_name TEXT NOT NULL,
        role TEXT NOT NULL,
        profile TEXT NOT NULL,
        status TEXT NOT NULL,
        time_zone TEXT NOT NULL,
        created_time {bigint} NOT NULL,
        created_by {bigint},
        UNIQUE (org_id, email)
    )""",
    """CREATE TABLE modules (
        id {pk},
        org_id {bigint} NOT NULL,
        api_name TEXT NOT NULL,
        api_key TEXT NOT NULL,
        module_name TEXT NOT NULL,
        singular_label TEXT NOT NULL,
        plural_label TEXT NOT NULL,
        generated_type TEXT NOT NULL,
        scope_name TEXT NOT NULL,
        duplicate_check_field TEXT,
        display_field TEXT NOT NULL,
        sequence_number INTEGER NOT NULL,
        created_time {bigint} NOT NULL,
        modified_time {bigint} NOT NULL,
        UNIQUE (org_id, api_key)
    )""",
    """CREATE TABLE fields (
        id {pk},
        org_id {bigint} NOT NULL,
        module_id {bigint} NOT NULL,
        api_name TEXT NOT NULL,
        api_key TEXT NOT NULL,
        field_label TEXT NOT NULL,
        data_type TEXT NOT NULL,
        length INTEGER,
        decimal_place INTEGER,
        system_mandatory INTEGER NOT NULL DEFAULT 0,
        read_only INTEGER NOT NULL DEFAULT 0,
        custom_field INTEGER NOT NULL DEFAULT 0,
        is_unique INTEGER NOT NULL DEFAULT 0,
        external_type TEXT,
        external_show INTEGER NOT NULL DEFAULT 0,
        extra TEXT NOT NULL DEFAULT '{{}}',
        sequence_number INTEGER NOT NULL,
        created_time {bigint} NOT NULL,
        UNIQUE (module_id, api_key)
    )""",
    """CREATE TABLE records (
        id {pk},
        org_id {bigint} NOT NULL,
        module_id {bigint} NOT NULL,
        owner_id {bigint} NOT NULL,
        created_by {bigint} NOT NULL,
        created_time {bigint} NOT NULL,
        modified_by {bigint} NOT NULL,
        modified_time {bigint} NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX records_by_module ON records (org_id, module_id, id)",
    # One row per external or unique value: the database, not the engine, keeps them unique.
    """CREATE TABLE unique_keys (
        org_id {bigint} NOT NULL,
        module_id {bigint} NOT NULL,
        field_id {bigint} NOT NULL,
        scope {bigint} NOT NULL,
        value TEXT NOT NULL,
        record_id {bigint} NOT NULL,
        PRIMARY KEY (org_id, module_id, field_id, scope, value)
    ) {without_rowid}""",
    "CREATE INDEX unique_keys_by_record ON unique_keys (record_id)",
    # Duplicate-check values that may repeat (the system field, e.g. Contacts.Email).
    """CREATE TABLE match_keys (
        org_id {bigint} NOT NULL,
        module_id {bigint} NOT NULL,
        field_id {bigint} NOT NULL,
        value TEXT NOT NULL,
        record_id {bigint} NOT NULL,
        PRIMARY KEY (org_id, module_id, field_id, value, record_id)
    ) {without_rowid}""",
    "CREATE INDEX match_keys_by_record ON match_keys (record_id)",
    """CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        org_id {bigint} NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        redirect_uri TEXT,
        created_time {bigint} NOT NULL
    )""",
    """CREATE TABLE oauth_tokens (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        org_id {bigint} NOT NULL,
        user_id {bigint} NOT NULL,
        client_id TEXT,
        scopes TEXT NOT NULL,
        expires_at {bigint},
        created_time {bigint} NOT NULL,
        parent_hash TEXT
    )""",
    "CREATE INDEX oauth_tokens_by_parent ON oauth_tokens (parent_hash)",
]

# Version 2: lists sorted by Modified_Time or Created_Time (`sort_by`) read an index in
# order instead of sorting the module's records.
_V2: list[str | dict[str, str]] = [
    "CREATE INDEX records_by_modified ON records (org_id, module_id, modified_time, id)",
    "CREATE INDEX records_by_created ON records (org_id, module_id, created_time, id)",
]

# Version 3: fewer index entries per write (each costs B-tree pages on every commit).
# Created_Time order is id order (ids grow with creation), so records_by_created goes; a
# record's key rows are derived from its values (records/keys.py), so the write path no
# longer reads them by record: only user-based external keys, whose scope (the writer)
# the values do not tell, keep an index by record.
_V3: list[str | dict[str, str]] = [
    "DROP INDEX records_by_created",
    "DROP INDEX match_keys_by_record",
    "DROP INDEX unique_keys_by_record",
    "CREATE INDEX unique_keys_user_scoped ON unique_keys (record_id) WHERE scope <> 0",
]

# Version 4: records_by_modified goes. It made every update delete the record's
# Modified_Time entry and insert it at another place of the index: on a SQLite database of
# 500,000 records a third of an update's SQLite work, a seventh of all its CPU (and on
# PostgreSQL an indexed column that changes rules out HOT updates). A sort_by=Modified_Time
# list now picks the page's ids by reading the module's rows with a top-N sort (about 50 ms
# for 200,000 records on the project machine) instead of reading an index in order;
# carrying Modified_Time in records_by_module would make that 2-3x faster, but still cost
# every update an index entry. Lists by id and by Created_Time (id order) still read
# records_by_module in order.
_V4: list[str | dict[str, str]] = [
    "DROP INDEX records_by_modified",
]

# Version 5 (PostgreSQL): a write checks, in its transaction's first round trip, that the
# access token a server process took from its cache still holds (auth/principal.py): this
# function fails the transaction when the token is gone (revoked) or its org's metadata
# changed since (the process validated the records against an older dictionary).
# SQLite checks with a plain SELECT in the same transaction and needs nothing.
_V5: list[str | dict[str, str]] = [
    {"postgresql": """CREATE FUNCTION crmlite_grant_holds(hashed TEXT, version BIGINT)
        RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM oauth_tokens t JOIN orgs o ON o.id = t.org_id
             WHERE t.token_hash = hashed AND t.kind = 'access' AND o.meta_version = version;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the access token was revoked or its org''s metadata changed'
                    USING ERRCODE = 'invalid_authorization_specification';
            END IF;
        END $$"""},
]

# Version 6 (PostgreSQL): records' pages keep 30 % free, so that an update can put the
# record's new version on its own page (a HOT update: no new entry in records' two
# indexes, a fraction of the WAL). An update touches no indexed column of records (v4),
# but with full pages (the default, fillfactor 100) nearly every update went to another
# page: measured with 100-record updates, PostgreSQL's work per batch fell by a third
# (bench/RESULTS.md). Pages filled before the upgrade gain room as their records are
# updated (at once with VACUUM FULL); the table takes about 1.4x the space. SQLite
# rewrites a row in place and has no such setting.
_V6: list[str | dict[str, str]] = [
    {"postgresql": "ALTER TABLE records SET (fillfactor = 70)"},
]

# Version 7 (PostgreSQL): an upsert whose records no external value matched locks their
# system duplicate-check values (Contacts: Email), looks them up and takes the new record
# ids it will need, in one round trip instead of three (Tx.lock_and_match). Each statement
# of a VOLATILE function takes a fresh snapshot, so the lookup sees what a writer that held
# one of these locks committed before it was granted, as a statement of its own did.
# The ids: as many as the records that would be new if no value were found, less the rows
# found (too few and the engine asks for more; too many are skipped, as a rollback skips).
_V7: list[str | dict[str, str]] = [
    {"postgresql": """CREATE FUNCTION crmlite_lock_and_match(locks BIGINT[], org BIGINT,
            module BIGINT, field BIGINT, vals TEXT[], new_ids INT)
        RETURNS TABLE (value TEXT, record_id BIGINT) LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE
            found_rows BIGINT;
        BEGIN
            PERFORM pg_advisory_xact_lock(k) FROM unnest(locks) AS k ORDER BY k;
            RETURN QUERY SELECT m.value, m.record_id FROM match_keys m
             WHERE m.org_id = org AND m.module_id = module AND m.field_id = field
               AND m.value = ANY(vals);
            GET DIAGNOSTICS found_rows = ROW_COUNT;
            IF new_ids > found_rows THEN
                RETURN QUERY SELECT NULL::TEXT, nextval('record_ids')
                    FROM generate_series(1, new_ids - found_rows);
            END IF;
        END $$"""},
]
# Version 8 (PostgreSQL): a batch of new records inserted in one call (records/new.py says
# which batches may be). crmlite_insert_new takes the locks the engine's planner would take
# for such a batch, in its order (the external values', then the system duplicate-check
# values'), and looks every value up once its locks are held. Should one be stored, it
# writes nothing and answers no row: the planner takes the batch. Otherwise it inserts
# the records with their keys and answers one row per record, in request order (n from
# 0), with the new record's id, or none for a record that lacks a mandatory value. Its
# statements reuse their plans (records/new.py: only once the hot tables are large, as
# write transactions do).
_V8: list[str | dict[str, str]] = [
    {"postgresql": """CREATE FUNCTION crmlite_insert_new(grant_hash TEXT,
            grant_version BIGINT, org BIGINT, module BIGINT, author BIGINT, at_time BIGINT,
            ext_field BIGINT, ext_locks BIGINT[], exts TEXT[],
            match_field BIGINT, match_locks BIGINT[], matches TEXT[],
            complete BOOLEAN[], docs TEXT[])
        RETURNS TABLE (n INT, rid BIGINT)
        LANGUAGE plpgsql SET plan_cache_mode = auto AS $$
        #variable_conflict use_column
        BEGIN
            IF grant_hash IS NOT NULL THEN
                PERFORM crmlite_grant_holds(grant_hash, grant_version);
            END IF;
            IF ext_field IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock(k) FROM unnest(ext_locks) AS k ORDER BY k;
                IF EXISTS (SELECT 1 FROM unique_keys u WHERE u.org_id = org
                           AND u.module_id = module AND u.field_id = ext_field
                           AND u.scope = 0 AND u.value = ANY(exts)) THEN
                    RETURN;
                END IF;
            END IF;
            IF match_field IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock(k) FROM unnest(match_locks) AS k ORDER BY k;
                IF EXISTS (SELECT 1 FROM match_keys m WHERE m.org_id = org
                           AND m.module_id = module AND m.field_id = match_field
                           AND m.value = ANY(matches)) THEN
                    RETURN;
                END IF;
            END IF;
            RETURN QUERY
            WITH fresh AS (
                SELECT x.n, CASE WHEN x.ok THEN nextval('record_ids') END AS id, x.e, x.v, x.d
                  FROM unnest(complete, exts, matches, docs) WITH ORDINALITY AS x(ok, e, v, d, n)
            ), r AS (
                INSERT INTO records (id, org_id, module_id, owner_id, created_by, created_time,
                                     modified_by, modified_time, data)
                SELECT f.id, org, module, author, author, at_time, author, at_time, f.d
                  FROM fresh f WHERE f.id IS NOT NULL
            ), u AS (
                INSERT INTO unique_keys (org_id, module_id, field_id, scope, value, record_id)
                SELECT org, module, ext_field, 0, f.e, f.id
                  FROM fresh f WHERE f.id IS NOT NULL AND f.e IS NOT NULL
            ), m AS (
                INSERT INTO match_keys (org_id, module_id, field_id, value, record_id)
                SELECT org, module, match_field, f.v, f.id
                  FROM fresh f WHERE f.id IS NOT NULL AND f.v IS NOT NULL
            )
            SELECT (f.n - 1)::INT, f.id FROM fresh f ORDER BY f.n;
        END $$"""},
]


def _index_email_values(tx: Tx) -> None:
    from crmlite.records.keys import index_email_values  # the engine's rule, at call time

    index_email_values(tx)


# Version 9: every email field of a module keeps its values in match_keys (not only the
# system duplicate-check field), so that a search by email reads an index instead of
# every record of the module (schema/dictionary.py ``indexed_fields``); the records stored
# before get their rows here.
_V9: list[Step] = [_index_email_values]
# Version 10 (PostgreSQL): the advisory lock of a key's name is no longer the first 8 bytes
# of its BLAKE2b digest but its CRC-32 and Adler-32 (store/postgres.py ``lock_id``). Writers
# of the two versions would not exclude each other on a key, so an older crmlite must not
# write here any more: this version refuses it (stop its processes before starting this
# one). The functions that take lock ids say which.
_LOCK_IDS = "the advisory lock ids of key names, CRC-32 << 32 | Adler-32, less 2^63 (schema v10)"
_V10: list[str | dict[str, str]] = [
    {"postgresql": "COMMENT ON FUNCTION crmlite_lock_and_match(BIGINT[], BIGINT, BIGINT, "
                   f"BIGINT, TEXT[], INT) IS 'locks: {_LOCK_IDS}'"},
    {"postgresql": "COMMENT ON FUNCTION crmlite_insert_new(TEXT, BIGINT, BIGINT, BIGINT, "
                   "BIGINT, BIGINT, BIGINT, BIGINT[], TEXT[], BIGINT, BIGINT[], TEXT[], "
                   f"BOOLEAN[], TEXT[]) IS 'ext_locks, match_locks: {_LOCK_IDS}'"},
]
# Version 11 (PostgreSQL): records' pages keep half of each page free (fillfactor 50, was 70).
# A sync job sends its records in the order it stores them, so a batch updates every
# record of a page at once; for all of their new versions to fit on the page (HOT: no new
# index entries, a fraction of the WAL), a page needs as much room as its records take.
# With 70 only about half of such updates stayed on their page (400-byte documents, 11
# records a page); with 50 every one does, and a page pruned of the old versions when it
# is next read takes the next round the same way. Inserts fill more pages (a quarter more
# pages dirtied per record, the same WAL); the table takes up to 1.4 times the space of
# 70, less once its records are updated (the moved versions of 70 took pages too).
_V11: list[str | dict[str, str]] = [
    {"postgresql": "ALTER TABLE records SET (fillfactor = 50)"},
]
MIGRATIONS: list[Sequence[Step]] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11]
SCHEMA_VERSION = len(MIGRATIONS)


def latest() -> int:
    """The schema version this crmlite writes (read at call time, so tests can pin it)."""
    return len(MIGRATIONS)


def upgrade(version: int, dialect: str, where: str) -> list[str | Callable[[Tx], None]]:
    """The statements that take a database at ``version`` to :func:`latest`.

    Raises :class:`SchemaVersionError` for a database made by a newer crmlite.
    """
    if version > latest():
        raise SchemaVersionError(
            f"{where} has schema version {version}, but this crmlite knows schema versions up "
            f"to {latest()}: it was made by a newer crmlite. Upgrade crmlite to use it; the "
            "database was not changed."
        )
    words = DIALECT_WORDS[dialect]
    statements: list[str | Callable[[Tx], None]] = []
    for step in MIGRATIONS[version:]:
        for sql in step:
            if isinstance(sql, dict):
                if dialect in sql:
                    statements.append(sql[dialect])
            elif isinstance(sql, str):
                statements.append(sql.format(**words))
            else:
                statements.append(sql)
    return statements
