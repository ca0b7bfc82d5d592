"""The throwaway PostgreSQL server the Postgres tests run against."""

import adbc_driver_postgresql.dbapi as pg
import pytest
from postgres_server import fresh_database


def test_each_test_gets_an_empty_database_of_its_own(postgres, postgres_url):
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE only_here (x int)")
        con.commit()
    with pg.connect(fresh_database(postgres)) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cur.fetchone()[0] == 0


def test_a_restart_drops_connections_and_keeps_the_data(postgres, postgres_url):
    if postgres.data_dir is None:
        pytest.skip("a server given by USERFLOW_TEST_POSTGRES_URL is not the tests' to restart")
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE kept (x int)")
        cur.execute("INSERT INTO kept VALUES (7)")
        con.commit()
        postgres.restart()
        with pytest.raises(pg.Error):
            cur.execute("SELECT 1")
    with pg.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT x FROM kept")
        assert cur.fetchall() == [(7,)]
