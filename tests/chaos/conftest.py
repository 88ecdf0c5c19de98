from __future__ import annotations

import pytest

from tests.support.system import running_system


@pytest.fixture
def system(tmp_path, database_url, db, request):
    """Sandbox, API, workers and scheduler as real processes (extra environment from
    ``@pytest.mark.system_env(...)``)."""
    marker = request.node.get_closest_marker("system_env")
    extra = marker.kwargs if marker else {}
    with running_system(tmp_path, database_url=database_url, engine=db, extra_env=extra) as running:
        yield running
