import pytest

from callscope.analytics import orgindex
from callscope.ingest.messages import compile_messages


@pytest.fixture(scope="session", autouse=True)
def _compiled_messages():
    """The Japanese catalogue compiled from the .po (the .mo is build output, not kept)."""
    from django.utils.translation import trans_real

    if compile_messages():
        trans_real._translations = {}  # drop catalogues loaded before the compile


@pytest.fixture(autouse=True)
def fresh_org_index():
    """Each test sees its own directory (the index is per process, reloaded by age)."""
    orgindex.invalidate()
    yield
    orgindex.invalidate()
