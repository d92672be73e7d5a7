"""The kernel's one dialect-aware INSERT that says what a duplicate key does (shared.db.insert_on_conflict)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from shared.db import Database, insert_on_conflict

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))


def test_a_duplicate_is_ignored_and_the_first_row_stands() -> None:
    db = Database("sqlite:///:memory:")
    metadata.create_all(db.engine)
    with db.transaction() as session:
        first = insert_on_conflict(session, things).values(id=1, name="first")
        ignoring = first.on_conflict_do_nothing(index_elements=[things.c.id]).returning(things.c.id)
        assert session.execute(ignoring).all() == [(1,)]
        again = insert_on_conflict(session, things).values(id=1, name="second")
        ignoring = again.on_conflict_do_nothing(index_elements=[things.c.id]).returning(things.c.id)
        assert session.execute(ignoring).all() == []
        assert session.execute(select(things.c.name)).all() == [("first",)]


def test_a_duplicate_can_be_merged_instead() -> None:
    db = Database("sqlite:///:memory:")
    metadata.create_all(db.engine)
    with db.transaction() as session:
        for name in ("first", "second"):
            statement = insert_on_conflict(session, things).values(id=1, name=name)
            session.execute(statement.on_conflict_do_update(index_elements=[things.c.id], set_={"name": name}))
        assert session.execute(select(things.c.name)).all() == [("second",)]


def test_the_dialect_can_be_named_for_statements_built_once() -> None:
    assert isinstance(insert_on_conflict("postgresql", things), postgresql.Insert)
    assert isinstance(insert_on_conflict("sqlite", things), sqlite.Insert)
    compiled = str(
        insert_on_conflict("postgresql", things)
        .values(id=1)
        .on_conflict_do_nothing(index_elements=[things.c.id])
        .compile(dialect=postgresql.dialect())
    )
    assert "ON CONFLICT (id) DO NOTHING" in compiled
