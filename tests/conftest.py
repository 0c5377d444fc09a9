"""Test-session setup shared by every test module.

The fused Triton kernels (``pairwise_update(..., impl="triton")``) are built on their first
call, for Triton's CPU interpreter when TRITON_INTERPRET=1 is in the environment by then.
It is set here, before any test module runs, so CPU tensors work in every test, on machines
with and without a GPU (an explicit TRITON_INTERPRET=0 is respected). Tests of the compiled
kernels (CUDA, ahead-of-time PTX) run in subprocesses without it.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
