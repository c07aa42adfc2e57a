"""What the machine's CPU can do fast, asked once, so training and inference pick the same precision."""

from __future__ import annotations

from functools import cache


@cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512_BF16 or AMX tiles), where bf16 autocast pays.

    Elsewhere torch still runs bf16 but emulates it, which is slower than fp32, so callers fall back to
    fp32. The probes are private torch helpers (torch.cpu._is_*_supported): a torch without them answers
    False, never an error.
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in probes if hasattr(torch.cpu, name))
    except (RuntimeError, AttributeError):
        return False
