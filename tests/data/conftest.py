"""Shared fixtures for the data-layer tests: tiny file writers and the shared-datasets location."""

from pathlib import Path

import pytest

# The read-only public datasets live in `shared/` beside the repository checkout.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'datasets'


@pytest.fixture
def write(tmp_path):
  """Writes text to a file under tmp_path and returns its path."""

  def _write(name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path

  return _write


@pytest.fixture
def shared_datasets() -> Path:
  """The shared datasets folder; skips the test when this checkout has none beside it."""
  if not SHARED_DATASETS.is_dir():
    pytest.skip(f'shared datasets not found at {SHARED_DATASETS}')
  return SHARED_DATASETS
