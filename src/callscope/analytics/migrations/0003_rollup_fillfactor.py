"""PostgreSQL: leave room in rollup pages so that the increments at call end are HOT updates
(no new index entries for an unchanged key). Nothing to do on SQLite."""

from django.db import migrations

TABLES = (
    "analytics_rollup",
    "analytics_matrixrollup",
    "analytics_loadminute",
    "analytics_loadhour",
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("analytics", "0002_remove_rollup_rollup_bucket_and_more")]

    operations = [migrations.RunPython(forwards, backwards)]
