import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _single_thread():
    # The library uses one thread for its tiny MLPs; tests match so results are reproducible.
    torch.set_num_threads(1)
    yield
