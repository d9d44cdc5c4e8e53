import pytest

from callscope.analytics import orgindex


@pytest.fixture(autouse=True)
def fresh_org_index():
    """Each test sees its own directory (the index is per process, reloaded by age)."""
    orgindex.invalidate()
    yield
    orgindex.invalidate()
