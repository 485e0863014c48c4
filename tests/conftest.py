"""Fixtures shared by the test suite, and the replay report of a failing test.

When a test fails, its report gains a "sparse_ops replay" section naming the seeds
``tests.helpers.draw_seed`` gave it and a command that replays it: ``SPARSE_OPS_SEED`` feeds
the same seeds back. Operands the test drew from torch's global generator depend on the tests
that ran before it in the process, so the global generator's state at the test's start is saved
too (``SPARSE_OPS_TORCH_RNG`` loads it back in the replay).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import torch

import bench  # noqa: F401  (the repo's kernels/ and simulator/ folders are not top-level names)
from tests import helpers
from tests.helpers import CASE_IDS, CASES, SEED_ENV

TORCH_RNG_ENV = "SPARSE_OPS_TORCH_RNG"
REPLAY_DIR = Path(tempfile.gettempdir()) / "sparse_ops_replay"
_RNG_AT_START = pytest.StashKey[torch.Tensor]()


@pytest.fixture(params=range(len(CASES)), ids=CASE_IDS)
def case(request):
    return CASES[request.param]


@pytest.fixture
def restore_simd_and_panel():
    """Puts back the SIMD level a test switched, the panel choice, the W8A8 dot engine and the
    bitmap SpMV kernels it forced (and forgets the panel's measured choices)."""
    from sparse_ops import _C

    level, vbmi, vnni = _C.simd_level(), _C._bitmap_vbmi(), _C._bitmap_vnni()
    perm = _C._nm4_perm()
    yield
    _C._set_nm4_perm(perm)
    _C._set_simd_level(level)
    _C._set_panel("auto")
    _C._set_int8_dot("auto")
    _C._set_bitmap_vbmi(vbmi)
    _C._set_bitmap_vnni(vnni)


@pytest.fixture(autouse=True)
def _fresh_dynamo(request):
    """A test that compiles starts and ends with dynamo's caches empty: compiled code objects
    (SparseLinear.forward, ...) count their recompilations per process, so that in one process
    (make sanitize, no xdist) the compile tests before one would use up its recompile limit."""
    if "compile" not in request.node.name:
        yield
        return
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start each test with no recorded seeds; keep (or, replaying, restore) the global RNG."""
    helpers.reset_seeds()
    replay = os.environ.get(TORCH_RNG_ENV)
    if replay:
        torch.set_rng_state(torch.load(replay))
    item.stash[_RNG_AT_START] = torch.get_rng_state()


def _replay_text(item: pytest.Item) -> str:
    seeds = helpers.seeds_drawn()
    lines = [f"seeds drawn by tests.helpers.draw_seed: {seeds if seeds else 'none'}"]
    env = [f"{SEED_ENV}={','.join(map(str, seeds))}"] if seeds else []
    rng = item.stash.get(_RNG_AT_START, None)
    if rng is not None:
        REPLAY_DIR.mkdir(parents=True, exist_ok=True)
        path = REPLAY_DIR / (re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:] + ".pt")
        torch.save(rng, path)
        lines.append(f"torch global RNG state at the test's start: {path}")
        env.append(f"{TORCH_RNG_ENV}={path}")
    lines.append("replay: " + " ".join(env) + f" python -m pytest '{item.nodeid}'")
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach the seeds and the replay command to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        text = _replay_text(item)
        report.sections.append(("sparse_ops replay", text))
        item.user_properties.append(("sparse_ops_replay", text))
