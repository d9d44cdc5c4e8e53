import io

import pytest
from django.core.management import call_command

from callscope.store.models import Call, Recording


@pytest.mark.django_db(transaction=True)
def test_demo_fills_the_log_and_records_real_calls():
    out = io.StringIO()
    call_command("demo", "--calls-per-year", "1500", "--recorded-calls", "8", stdout=out)
    text = out.getvalue()
    assert "Manager login: manager / " in text
    assert Call.objects.filter(source="pcap", probe="demo").count() == 8
    assert Call.objects.count() > 1000
    recorded = Recording.objects.filter(status=Recording.Status.RECORDED)
    assert recorded.exists()
    assert all(r.wrapped_key and r.storage_key for r in recorded)
    again = io.StringIO()
    call_command("demo", "--if-empty", stdout=again)
    assert "already holds calls" in again.getvalue()
