"""Turn the `device` parameter into a torch.device, failing clearly when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from ex4.errors import Ex4Error


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available else cpu; "cpu"; "cuda" (Ex4Error when this machine has no CUDA device)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise Ex4Error("parameter 'device' = 'cuda': no CUDA device is available here (use 'auto' or 'cpu')")
        return torch.device("cuda")
    raise Ex4Error(f"parameter 'device' = {name!r}: expected auto, cpu or cuda")
