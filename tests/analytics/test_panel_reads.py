"""Panel queries on PostgreSQL run without parallel workers, set once per connection."""

import pytest
from django.db import connection, transaction

from callscope.analytics import queries

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a PostgreSQL planner setting"
)


def parallel_workers() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        return str(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_setting_is_made_once_for_the_connection():
    connection.close()
    assert queries._read("SELECT 1", []) == [(1,)]
    assert parallel_workers() == "0"
    assert connection.connection in queries._SERIAL
    connection.close()  # a new connection starts with the server's default again
    assert parallel_workers() != "0"
    assert queries._read("SELECT 2", []) == [(2,)]
    assert parallel_workers() == "0"


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_it_lasts_for_that_transaction_only():
    connection.close()
    with transaction.atomic():
        assert queries._read("SELECT 1", []) == [(1,)]
        assert parallel_workers() == "0"
    assert parallel_workers() != "0"
    assert connection.connection not in queries._SERIAL
