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
