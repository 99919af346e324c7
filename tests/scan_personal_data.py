#!/usr/bin/env python3
"""Searches every table of every context's database for an erased person's e-mail, name and
street (from the browser test's erased-person.json), case-insensitively, and fails naming each
table that still holds one. The embedded topology's SQLite files are read with Python's sqlite3;
PostgreSQL databases through psql.

    scan_personal_data.py PERSON_JSON --sqlite DATA_DIR
    scan_personal_data.py PERSON_JSON --postgres URL [URL ...]
"""

import json
import pathlib
import sqlite3
import subprocess
import sys


def sqlite_hits(path, needles):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    hits = []
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        try:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
        except sqlite3.DatabaseError:
            continue
        for needle in needles:
            pattern = f"%{needle.lower()}%"
            where = " OR ".join(f'lower(CAST("{c}" AS TEXT)) LIKE ?' for c in columns)
            if not where:
                continue
            try:
                (n,) = db.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {where}', [pattern] * len(columns)).fetchone()
            except sqlite3.DatabaseError:
                # A virtual table whose module is not loaded here (FTS5 vocab): its rows come
                # from a real table that is scanned itself.
                continue
            if n:
                hits.append(f"{path.name}: {table}: {n} row(s) with {needle!r}")
    return hits


def postgres_hits(url, needles):
    hits = []
    for needle in needles:
        pattern = f"%{needle.lower()}%".replace("'", "''")
        query = (
            "SELECT format('SELECT %L AS t, count(*) FROM %I.%I x WHERE lower(x::text) LIKE %L', "
            "schemaname || '.' || tablename, schemaname, tablename, '" + pattern + "') "
            "FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \\gexec"
        )
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\t", url],
            input=query, capture_output=True, text=True, check=True,
        ).stdout
        for line in out.splitlines():
            table, _, count = line.partition("\t")
            if count.strip() not in ("", "0"):
                hits.append(f"{url.rsplit('/', 1)[-1]}: {table}: {count} row(s) with {needle!r}")
    return hits


def main():
    if len(sys.argv) < 4 or sys.argv[2] not in ("--sqlite", "--postgres"):
        sys.exit(__doc__)
    person = json.loads(pathlib.Path(sys.argv[1]).read_text())
    needles = [person["email"], person["name"], person["street"]]
    hits = []
    if sys.argv[2] == "--sqlite":
        files = sorted(pathlib.Path(sys.argv[3]).rglob("*.db"))
        if not files:
            sys.exit(f"no SQLite databases under {sys.argv[3]}")
        for path in files:
            hits += sqlite_hits(path, needles)
        scanned = len(files)
    else:
        for url in sys.argv[3:]:
            hits += postgres_hits(url, needles)
        scanned = len(sys.argv) - 3
    if hits:
        print("personal data left after the erasure:\n  " + "\n  ".join(hits), file=sys.stderr)
        sys.exit(1)
    print(f"erased person found nowhere: {scanned} database(s), every table, e-mail, name and street")


if __name__ == "__main__":
    main()
