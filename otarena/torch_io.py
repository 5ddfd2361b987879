"""Reading official PyTorch checkpoints into NumPy, safely (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from otarena.data import DataFile, describe_problem
from otarena.errors import DataError


def load_state_dict(path: Path, entry: DataFile) -> dict[str, np.ndarray]:
    """A state dict of tensors as float NumPy arrays; a one-line DataError if unreadable."""
    import torch  # imported here: only checkpoint loading needs it

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, unsafe object, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(describe_problem(entry, f"unreadable ({reason[:120]})")) from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(describe_problem(entry, "not a state dict of tensors"))
    return {k: v.detach().cpu().numpy() for k, v in state.items()}
