"""ZeroGPU as a Space sees it at start-up, simulated for tests/test_zerogpu.py (this folder goes first on the app's
PYTHONPATH): `torch.cuda.is_available()` is True before any GPU is attached, and any real use of CUDA outside a
function decorated with `spaces.GPU` (the fake `spaces` package beside this file) fails, as there is no GPU there.
Each such use is also written to $ZEROGPU_SIM_LOG ("cuda-outside ...") so the test sees it even if it was caught.
"""

import os
import traceback

import torch
import torch.cuda

import spaces

LOG = os.environ.get("ZEROGPU_SIM_LOG", "")


def _log(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")


torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
_real_lazy_init = torch.cuda._lazy_init


def _lazy_init():
    if not spaces.inside_gpu_call():
        where = "".join(traceback.format_stack(limit=8)[:-1]).replace("\n", " | ")
        _log(f"cuda-outside {where}")
        raise RuntimeError("ZeroGPU (simulated): CUDA used outside a @spaces.GPU function: no GPU is attached here")
    return _real_lazy_init()


torch.cuda._lazy_init = _lazy_init
_log("started")
