"""Where the SQL differences between SQLite and PostgreSQL live.

The ledger's SQL is written once, in SQLite's dialect (the original backend, and the one every
existing statement is already in). :func:`translate` turns one such statement into
PostgreSQL's: ``?`` and ``:name`` placeholders into psycopg's ``%s`` and ``%(name)s`` (outside
string literals, quoted identifiers and comments; a literal ``%`` doubled), ``INSERT OR
IGNORE`` and ``INSERT OR REPLACE`` into ``INSERT … ON CONFLICT``, SQLite's function names
into PostgreSQL's (``char`` → ``chr``, ``instr`` → ``strpos``, ``ifnull`` → ``coalesce``),
``LIKE`` into ``ILIKE`` (SQLite's ``LIKE`` ignores ASCII case), the column named ``user`` (a
reserved word in PostgreSQL, where a bare ``user`` silently means ``current_user``) quoted,
``BEGIN IMMEDIATE`` into ``BEGIN``, and in DDL the storage classes into PostgreSQL types
(``INTEGER`` → ``BIGINT``, SQLite's integers being 64-bit; ``INTEGER PRIMARY KEY``, an alias
of the rowid that SQLite fills in when the insert leaves it out, → an identity column that
accepts explicit values; ``REAL`` → ``DOUBLE PRECISION``; ``BLOB`` → ``BYTEA``).
:func:`translate_ddl` also turns the ledger's append-only triggers (``SELECT RAISE(ABORT,
…)``) into PostgreSQL trigger statements sharing one function (:data:`REFUSE_FUNCTION`).

What has no faithful textual translation is refused with :class:`Untranslatable` naming the
construct (``PRAGMA``, ``sqlite_master``, ``json_each``/``json_extract``, ``GLOB``, ``rowid``,
…): those call sites go through the :class:`Dialect` record instead, which holds the
per-backend SQL fragments (listing tables and columns, JSON array elements and fields, the
write-transaction opener, the schema version) so the code keeps one path.

Pure functions only: no driver is imported here (psycopg gets its own module), so this module
is as cheap to import as the SQLite code path that never needs it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from auditor.errors import LedgerError

__all__ = ["POSTGRESQL", "REFUSE_FUNCTION", "SQLITE", "BackendError", "Dialect",
           "Untranslatable", "dialect_of", "split_statements", "translate", "translate_ddl",
           "writer_lock_key"]


class Untranslatable(LedgerError):
    """A statement using a SQLite construct with no faithful PostgreSQL text."""


class BackendError(LedgerError):
    """A database error of a backend other than SQLite (PostgreSQL: :mod:`.pgconn` raises it,
    one line, never the password). Defined here, not beside the driver, so that code catching
    ``(sqlite3.Error, BackendError)`` does not import psycopg."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# -- the per-backend record --------------------------------------------------------------------

@dataclass(frozen=True)
class Dialect:
    """What differs between the backends, as data and small SQL builders; the ledger's code
    asks this record instead of branching on the backend's name."""

    name: Literal["sqlite", "postgresql"]
    # DB-API paramstyle of the driver: sqlite3 takes ``?``, psycopg takes ``%s``.
    paramstyle: Literal["qmark", "format"]
    placeholder: str
    integer_type: str
    integer_pk: str
    real_type: str
    blob_type: str
    # Opens a transaction that will write. SQLite's IMMEDIATE takes the database's write lock
    # before the first read; PostgreSQL locks rows as they are written, and the one-writer-
    # per-chain rule comes from an advisory lock instead (:func:`writer_lock_key`).
    begin_write: str
    # The tables of the ledger (one column, ``name``).
    tables_sql: str
    # Where the schema version is kept: SQLite's ``PRAGMA user_version``; PostgreSQL has none,
    # so a one-row table holds it.
    version_sql: str
    # Opens a read snapshot for several statements (verify, a report). SQLite's deferred
    # BEGIN already reads one snapshot; PostgreSQL's default READ COMMITTED takes a new one
    # per statement, so what is verified would not be what is read.
    begin_read: str = "BEGIN"

    def param(self, name: str | None = None) -> str:
        """A placeholder: positional, or named (``:name`` / ``%(name)s``)."""
        if name is None:
            return self.placeholder
        return f":{name}" if self.paramstyle == "qmark" else f"%({name})s"

    def params(self, count: int) -> str:
        """``?, ?, ?`` / ``%s, %s, %s`` for an ``IN (…)`` or ``VALUES (…)`` list."""
        return ", ".join([self.placeholder] * count)

    def json_values(self, expr: str, alias: str) -> str:
        """A FROM item giving the elements of the JSON array in ``expr`` (a TEXT column) as
        text, in column ``<alias>.value``."""
        if self.name == "sqlite":
            return f"json_each({expr}) {alias}"
        return f"jsonb_array_elements_text(({expr})::jsonb) AS {alias}(value)"

    def json_field(self, expr: str, key: str) -> str:
        """The text of member ``key`` of the JSON object in ``expr``."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"JSON key {key!r}: letters, digits and _ only")
        if self.name == "sqlite":
            return f"json_extract({expr}, '$.{key}')"
        return f"(({expr})::jsonb ->> '{key}')"

    def as_text(self, expr: str) -> str:
        """``expr`` as text: PostgreSQL refuses ``coalesce(an_integer, '')`` and similar
        mixes that SQLite's dynamic typing allows; ``CAST(… AS TEXT)`` is valid in both."""
        return f"CAST({expr} AS TEXT)"

    def exclusive(self, name: str) -> tuple[str, tuple[int, ...]] | None:
        """The statement (and its parameters) that, run first in a write transaction, makes
        writers of ``name`` (say ``outbox:<cluster>``) take turns until it commits. SQLite:
        None, its ``BEGIN IMMEDIATE`` already holds the database's one write lock;
        PostgreSQL: a transaction-level advisory lock (its ``BEGIN`` locks nothing)."""
        if self.name == "sqlite":
            return None
        return "SELECT pg_advisory_xact_lock(?)", (writer_lock_key(name),)

    def nulls_first(self, expr: str) -> str:
        """An ascending ``ORDER BY`` key that puts NULLs first, as SQLite always does
        (PostgreSQL puts them last unless told)."""
        return expr if self.name == "sqlite" else f"{expr} NULLS FIRST"

    def nulls_last_desc(self, expr: str) -> str:
        """A descending ``ORDER BY`` key with NULLs last, as SQLite orders ``DESC``
        (PostgreSQL puts them first unless told)."""
        return f"{expr} DESC" if self.name == "sqlite" else f"{expr} DESC NULLS LAST"

    def columns_sql(self, table: str) -> str:
        """The columns of ``table`` (one column, ``name``)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise ValueError(f"table name {table!r}")
        if self.name == "sqlite":
            return f"SELECT name FROM pragma_table_info('{table}')"
        return ("SELECT column_name AS name FROM information_schema.columns WHERE "
                f"table_schema = current_schema() AND table_name = '{table}' "
                "ORDER BY ordinal_position")

    def sql(self, text: str, *, primary_keys: Mapping[str, Sequence[str]] | None = None) -> str:
        """A statement written for SQLite, in this dialect."""
        if self.name == "sqlite":
            return text
        return translate(text, primary_keys=primary_keys)


SQLITE = Dialect(
    name="sqlite", paramstyle="qmark", placeholder="?", integer_type="INTEGER",
    integer_pk="INTEGER PRIMARY KEY", real_type="REAL", blob_type="BLOB",
    begin_write="BEGIN IMMEDIATE",
    tables_sql="SELECT name FROM sqlite_master WHERE type = 'table'",
    version_sql="PRAGMA user_version")

POSTGRESQL = Dialect(
    name="postgresql", paramstyle="format", placeholder="%s", integer_type="BIGINT",
    integer_pk="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    real_type="DOUBLE PRECISION", blob_type="BYTEA", begin_write="BEGIN",
    tables_sql=("SELECT table_name AS name FROM information_schema.tables WHERE "
                "table_schema = current_schema() AND table_type = 'BASE TABLE'"),
    version_sql="SELECT coalesce(max(version), 0) FROM ledger_schema_version",
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def dialect_of(conn: object) -> Dialect:
    """The dialect of a ledger connection: a PostgreSQL one (:class:`.pgconn.PgConnection`)
    carries its record; a plain ``sqlite3.Connection`` has none and is SQLite."""
    found = getattr(conn, "dialect", None)
    return found if isinstance(found, Dialect) else SQLITE


def writer_lock_key(cluster: str) -> int:
    """The advisory-lock key of one cluster's writer (``pg_advisory_lock(key)``): a signed
    64-bit integer, the same on every machine and Python version (``hash()`` is salted per
    process), so two runs of one cluster contend and runs of different clusters do not."""
    digest = hashlib.sha256(b"drift-auditor ledger writer\0" + cluster.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- lexing: what is code, what is a literal -------------------------------------------------

Kind = Literal["code", "string", "ident", "comment"]


def _segments(sql: str) -> list[tuple[Kind, str]]:
    """``sql`` cut into code, '…' string literals, "…" quoted identifiers and comments, so
    rewrites touch code only (a ``?`` inside a literal is a question mark)."""
    out: list[tuple[Kind, str]] = []
    i, start, n = 0, 0, len(sql)

    def flush(upto: int) -> None:
        if upto > start:
            out.append(("code", sql[start:upto]))

    while i < n:
        ch = sql[i]
        if ch in "'\"":
            flush(i)
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # '' or "" escapes the quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                what = "string" if ch == "'" else "identifier"
                raise Untranslatable(f"unterminated {what} in: {sql!r}")
            out.append(("string" if ch == "'" else "ident", sql[i:j + 1]))
            i = start = j + 1
        elif sql.startswith("--", i):
            flush(i)
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(("comment", sql[i:j]))
            i = start = j
        elif sql.startswith("/*", i):
            flush(i)
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(("comment", sql[i:j]))
            i = start = j
        else:
            i += 1
    flush(n)
    return out


def split_statements(script: str) -> list[str]:
    """A script's statements, split on ``;`` outside literals and comments; a trigger's
    ``BEGIN … END`` body stays whole (its inner ``;`` end statements of the body)."""
    statements: list[str] = []
    current: list[str] = []
    code: list[str] = []  # the current statement's code only: is it a CREATE TRIGGER?
    depth = 0  # inside CREATE TRIGGER … BEGIN … END
    for kind, text in _segments(script):
        if kind != "code":
            current.append(text)
            continue
        pos = 0
        for match in re.finditer(r";|\bBEGIN\b|\bEND\b|\bCASE\b", text, re.IGNORECASE):
            word = match.group().upper()
            so_far = ("".join(code) + text[pos:match.start()]).lstrip().upper()
            opens_body = (word == "BEGIN" and so_far.startswith("CREATE")
                          and "TRIGGER" in so_far)
            if opens_body or (word == "CASE" and depth):  # a CASE in a body has its own END
                depth += 1
            elif word == "END" and depth:
                depth -= 1
            elif word == ";" and not depth:
                current.append(text[pos:match.start()])
                statement = "".join(current).strip()
                if statement:
                    statements.append(statement)
                current, code, pos = [], [], match.end()
                continue
            current.append(text[pos:match.end()])
            code.append(text[pos:match.end()])
            pos = match.end()
        current.append(text[pos:])
        code.append(text[pos:])
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


# -- translation ---------------------------------------------------------------------------

# Constructs refused outright, with what to do instead.
_REFUSED: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), advice) for pattern, advice in (
        (r"\bPRAGMA\b", "PRAGMA: use Dialect.version_sql / Dialect.columns_sql, or drop it "
                        "(journal_mode, synchronous, query_only have no per-statement twin)"),
        (r"\bsqlite_(master|schema|sequence)\b", "SQLite's catalog: use Dialect.tables_sql"),
        (r"\bjson_each\s*\(", "json_each: use Dialect.json_values"),
        (r"\bjson_extract\s*\(", "json_extract: use Dialect.json_field"),
        (r"\bjson_[a-z_]+\s*\(", "a SQLite JSON function: write it per dialect"),
        (r"\bGLOB\b", "GLOB (case-sensitive wildcard match): write it per dialect"),
        (r"\b(_rowid_|rowid)\b", "rowid: name the INTEGER PRIMARY KEY column"),
        (r"\bWITHOUT\s+ROWID\b", "WITHOUT ROWID tables"),
        (r"\bATTACH\b|\bDETACH\b", "ATTACH: one PostgreSQL database, schemas instead"),
        (r"\b(datetime|julianday|strftime|unixepoch|date|time)\s*\(",
         "SQLite date functions: timestamps are ISO-8601 TEXT; compute in Python"),
        (r"\b(group_concat|printf|iif|typeof|total|randomblob|zeroblob)\s*\(",
         "a SQLite-only function: write it per dialect"),
        # Zero-argument only: ``changes (`` is also the ledger's table of that name.
        (r"\b(last_insert_rowid|changes|total_changes)\s*\(\s*\)",
         "a SQLite-only function: use RETURNING or the cursor's rowcount"),
        (r"\bRAISE\s*\(", "RAISE outside a trigger translate_ddl knows"),
        (r"^\s*REPLACE\s+INTO\b", "REPLACE INTO: write INSERT OR REPLACE with primary_keys"),
    ))

_RENAMED_FUNCTIONS = {"char": "chr", "instr": "strpos", "ifnull": "coalesce"}
_FUNCTION = re.compile(r"\b(" + "|".join(_RENAMED_FUNCTIONS) + r")(\s*\()", re.IGNORECASE)
# Column names of the ledger that PostgreSQL reserves (a bare ``user`` is current_user there).
RESERVED_COLUMNS = ("user",)
_RESERVED = re.compile(r"(?<![\w$])(" + "|".join(RESERVED_COLUMNS) + r")(?![\w$]|\s*\()",
                       re.IGNORECASE)
_INSERT_OR = re.compile(r"\bINSERT\s+OR\s+(IGNORE|REPLACE|ABORT|FAIL|ROLLBACK)\s+INTO\b",
                        re.IGNORECASE)
_BEGIN = re.compile(r"^\s*BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$",
                    re.IGNORECASE)
_DDL = re.compile(r"^\s*(CREATE\s+(TEMP\w*\s+)?TABLE|ALTER\s+TABLE)\b", re.IGNORECASE)
_TYPES = (
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.IGNORECASE),
     POSTGRESQL.integer_pk),
    (re.compile(r"\bINTEGER\b|\bINT\b", re.IGNORECASE), POSTGRESQL.integer_type),
    (re.compile(r"\bREAL\b|\bDOUBLE\b(?!\s+PRECISION)|\bFLOAT\b", re.IGNORECASE),
     POSTGRESQL.real_type),
    (re.compile(r"\bBLOB\b", re.IGNORECASE), POSTGRESQL.blob_type),
    # Text columns compare and sort by bytes, as SQLite's BINARY collation does, whatever the
    # database's locale: the same runs list objects in the same order on both back ends (an
    # en-US database sorts "alpha" before "Beta", SQLite after), and the order cannot change
    # with the server's collation library.
    (re.compile(r"(?<![Aa][Ss]\s)\bTEXT\b(?!\s+COLLATE)", re.IGNORECASE), 'TEXT COLLATE "C"'),
)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def translate(sql: str, *, primary_keys: Mapping[str, Sequence[str]] | None = None,
              params: bool = True) -> str:
    """One statement written for SQLite, as PostgreSQL (psycopg) text.

    ``primary_keys`` (table → key columns) is needed for ``INSERT OR REPLACE``, whose
    PostgreSQL form names its conflict target. ``params``: the statement will be executed with
    a parameter sequence (even an empty one), so psycopg reads ``%`` as a placeholder and a
    literal ``%`` is written ``%%``; without parameters psycopg sends the text as it is.
    Raises :class:`Untranslatable` naming a construct it cannot carry over.
    """
    if _BEGIN.match(sql):
        return POSTGRESQL.begin_write
    segments = _segments(sql)
    code = " ".join(text for kind, text in segments if kind == "code")
    for pattern, advice in _REFUSED:
        found = pattern.search(code)
        if found:
            raise Untranslatable(f"{found.group().strip()}: {advice} (in: {_short(sql)})")
    insert_or = _INSERT_OR.search(code)
    conflict = ""
    if insert_or:
        conflict = _conflict_clause(insert_or.group(1).upper(), sql, segments, primary_keys)
    ddl = bool(_DDL.match(code))
    out: list[str] = []
    for kind, text in segments:
        if kind == "code":
            text = _INSERT_OR.sub("INSERT INTO", text)
            text = _FUNCTION.sub(lambda m: _RENAMED_FUNCTIONS[m.group(1).lower()] + m.group(2),
                                 text)
            text = re.sub(r"\b(NOT\s+)?LIKE\b", lambda m: (m.group(1) or "") + "ILIKE", text,
                          flags=re.IGNORECASE)
            text = _RESERVED.sub(lambda m: f'"{m.group(1).lower()}"', text)
            if ddl:
                for pattern, replacement in _TYPES:
                    text = pattern.sub(replacement, text)
            if params:
                text = text.replace("%", "%%")
                text = text.replace("?", "%s")
                text = _NAMED.sub(r"%(\1)s", text)
        elif kind == "string" and params:
            text = text.replace("%", "%%")
        out.append(text)
    result = "".join(out)
    if conflict:
        result = _append_clause(result, conflict)
    return result


def _conflict_clause(verb: str, sql: str, segments: list[tuple[Kind, str]],
                     primary_keys: Mapping[str, Sequence[str]] | None) -> str:
    if verb == "IGNORE":
        return "ON CONFLICT DO NOTHING"
    if verb != "REPLACE":
        raise Untranslatable(f"INSERT OR {verb}: no PostgreSQL form (in: {_short(sql)})")
    # INSERT OR REPLACE INTO table (col, …): the conflict target is the table's key.
    flat = "".join(text if kind != "string" else "''" for kind, text in segments)
    head = re.search(r"\bINTO\s+\"?(\w+)\"?\s*\(([^)]*)\)", flat, re.IGNORECASE)
    if not head:
        raise Untranslatable(f"INSERT OR REPLACE without a column list (in: {_short(sql)})")
    table = head.group(1)
    keys = (primary_keys or {}).get(table)
    if not keys:
        raise Untranslatable(f"INSERT OR REPLACE INTO {table}: pass its key columns in "
                             f"primary_keys (in: {_short(sql)})")
    columns = [c.strip().strip('"') for c in head.group(2).split(",")]
    rest = [c for c in columns if c not in keys]
    target = ", ".join(_quote(k) for k in keys)
    if not rest:
        return f"ON CONFLICT ({target}) DO NOTHING"
    # SQLite's REPLACE deletes the old row and inserts the new one: columns the insert leaves
    # out become their defaults. The ledger always lists every column, so updating the listed
    # ones is the same row.
    sets = ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in rest)
    return f"ON CONFLICT ({target}) DO UPDATE SET {sets}"


def _quote(column: str) -> str:
    return f'"{column}"' if column.lower() in RESERVED_COLUMNS else column


def _append_clause(sql: str, clause: str) -> str:
    """Put ``clause`` at the end of the INSERT, before a ``RETURNING`` and a final ``;``."""
    body = sql.rstrip()
    end = ";" if body.endswith(";") else ""
    body = body.removesuffix(";").rstrip()
    # The last RETURNING outside literals (a literal containing the word is not code).
    cut = None
    pos = 0
    for kind, text in _segments(body):
        if kind == "code":
            for match in re.finditer(r"\bRETURNING\b", text, re.IGNORECASE):
                cut = pos + match.start()
        pos += len(text)
    if cut is not None:
        return f"{body[:cut].rstrip()} {clause} {body[cut:]}{end}"
    return f"{body} {clause}{end}"


def _short(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 120 else flat[:117] + "..."


# -- DDL: tables, indexes, the append-only triggers -----------------------------------------

# One function for every refusing trigger: the message comes as the trigger's argument.
REFUSE_FUNCTION = "ledger_refuse"
_REFUSE_FUNCTION_SQL = (
    f"CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n  RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';\nEND\n$$")
_TRIGGER = re.compile(
    r"^\s*CREATE\s+TRIGGER\s+(IF\s+NOT\s+EXISTS\s+)?(?P<name>\"?\w+\"?)\s+"
    r"(?P<when>BEFORE|AFTER)\s+(?P<verb>UPDATE|DELETE|INSERT)(?:\s+OF\s+[\w\s,\"]+?)?\s+ON\s+"
    r"(?P<table>\"?\w+\"?)\s+(?:FOR\s+EACH\s+ROW\s+)?(?:WHEN\s+(?P<cond>.+?)\s+)?"
    r"BEGIN\s+SELECT\s+RAISE\s*\(\s*(ABORT|FAIL|ROLLBACK)\s*,\s*(?P<msg>'(?:[^']|'')*')\s*\)"
    r"\s*;\s*END\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def translate_ddl(sql: str) -> list[str]:
    """One schema statement written for SQLite (as ``sqlite_master.sql`` holds it), as the
    PostgreSQL statements to execute without parameters, in order.

    ``CREATE TABLE``/``INDEX``/``ALTER TABLE`` translate one to one. A trigger that refuses a
    write (``BEGIN SELECT RAISE(ABORT, 'message'); END``, the ledger's append-only guard)
    becomes the shared :data:`REFUSE_FUNCTION` (created or replaced) and a row trigger
    passing the message; a ``BEFORE DELETE`` one also gets a statement trigger refusing
    ``TRUNCATE``, which skips row triggers in PostgreSQL. Any other trigger is
    :class:`Untranslatable`.
    """
    if re.match(r"^\s*CREATE\s+TRIGGER\b", sql, re.IGNORECASE):
        return _trigger(sql)
    return [translate(sql, params=False)]


def _trigger(sql: str) -> list[str]:
    match = _TRIGGER.match(sql)
    if not match:
        raise Untranslatable(f"trigger other than SELECT RAISE(ABORT, …): {_short(sql)}")
    name, table = match["name"], match["table"]
    when, verb = match["when"].upper(), match["verb"].upper()
    condition = ""
    if match["cond"]:
        condition = f" WHEN ({translate(match['cond'], params=False)})"
    statements = [_REFUSE_FUNCTION_SQL,
                  f"CREATE TRIGGER {name} {when} {verb} ON {table} FOR EACH ROW{condition} "
                  f"EXECUTE FUNCTION {REFUSE_FUNCTION}({match['msg']})"]
    if verb == "DELETE" and not condition:
        truncate = name[:-1] + '_truncate"' if name.endswith('"') else f"{name}_truncate"
        statements.append(f"CREATE TRIGGER {truncate} BEFORE TRUNCATE ON {table} "
                          f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}({match['msg']})")
    return statements
