from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "lab-format"


@pytest.fixture(scope="session")
def lab_format() -> Path:
    """../shared/lab-format (the course's checkpoint fixtures), or skip."""
    if not SHARED.is_dir():
        pytest.skip(f"course fixtures not found at {SHARED} (the shared/ folder beside the repo)")
    return SHARED


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-model tests: on a small, busy machine two threads
    fighting over the cores are slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
