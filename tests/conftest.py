"""Fixtures shared by the test suite."""

from __future__ import annotations

import pytest

from tests.helpers import CASE_IDS, CASES


@pytest.fixture(params=range(len(CASES)), ids=CASE_IDS)
def case(request):
    return CASES[request.param]
