"""Inserting many rows in one short statement.

SQLAlchemy's executemany on PostgreSQL sends a multi-row VALUES list with one
placeholder per value; for a sweep's 1,000 events and 1,700 notifications the
driver spends longer parsing that statement than the database spends running
it. On PostgreSQL the rows go instead as one array per column, unpacked by
`unnest()`: the statement stays the same size whatever the number of rows.
Elsewhere (SQLite) a plain executemany is already fast.
"""

from sqlalchemy import Table, any_, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: list[dict], returning=()):
    """Insert `rows` (dicts with the same keys) into `table` in one statement.

    With `returning` (columns of `table`), answers the inserted rows' values,
    in no particular order; otherwise None. A single row goes as a plain VALUES,
    the shortest statement and the cheapest to build.
    """
    if not rows:
        return []
    if len(rows) == 1 or session.get_bind().dialect.name != "postgresql":
        statement = insert(table)
        given = rows[0] if len(rows) == 1 else rows  # one row: a plain VALUES
        if returning:
            statement = statement.returning(*returning)
            return session.execute(statement, given).all()
        session.execute(statement, given)
        return None
    names = list(rows[0])
    arrays = [
        bindparam(
            f"{name}_values",
            [row[name] for row in rows],
            type_=ARRAY(table.c[name].type),
        )
        for name in names
    ]
    unpacked = func.unnest(*arrays).table_valued(*names).render_derived()
    statement = insert(table).from_select(names, select(*unpacked.c))
    if returning:
        return session.execute(statement.returning(*returning)).all()
    session.execute(statement)
    return None


def among(session: Session, column, ids):
    """`column IN ids`, as one array parameter on PostgreSQL (a short statement to parse)."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(ids)
    return column == any_(bindparam(None, list(ids), type_=ARRAY(column.type)))
