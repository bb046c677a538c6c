"""Model FLOPs utilisation against the device's real peak, not a hard-coded A100.

Peaks are dense (no sparsity) tensor-core numbers from the vendors' datasheets, per dtype; fp32
training on Ampere+ runs its matmuls in TF32 (train.py enables it), so fp32 maps to the TF32 peak.
A CPU's peak is measured once: the best of a few fp32 (or bf16) matmuls.
"""

from __future__ import annotations

import functools
import time

import torch

# device-name substring -> {dtype: peak FLOP/s}; the first match wins (more specific first)
PEAKS = [
    ("H200 NVL", {"bf16": 835.5e12, "fp16": 835.5e12, "fp32": 417.5e12}),  # H200 NVL datasheet: 1,671 / 835 TFLOPS with sparsity, halved
    ("H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 494e12}),  # H200 SXM datasheet (same SM as H100 SXM)
    ("H100 NVL", {"bf16": 835.5e12, "fp16": 835.5e12, "fp32": 417.5e12}),  # H100 NVL datasheet: 1,671 / 835 TFLOPS with sparsity, halved
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 378e12}),  # H100 PCIe datasheet
    ("H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 494e12}),  # H100 SXM datasheet (TF32 dense)
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 156e12}),  # A100 datasheet (TF32 dense)
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 183e12}),  # L40S datasheet (TF32 dense)
    ("A10G", {"bf16": 125e12, "fp16": 125e12, "fp32": 62.5e12}),  # A10G (AWS) datasheet
    ("RTX 4090", {"bf16": 165e12, "fp16": 165e12, "fp32": 82.6e12}),  # Ada whitepaper, dense
]


@functools.lru_cache(maxsize=None)
def measured_cpu_peak(dtype: str = "fp32", n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matmuls on this CPU with torch's current threads."""
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def peak_flops(device: torch.device, dtype: str) -> tuple[float | None, str]:
    """(peak FLOP/s, what it is) for this device and training dtype; None when unknown."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in PEAKS:
            if key in name:
                return peaks[dtype], f"{name} {dtype} datasheet peak"
        return None, f"{name}: no peak in records/mfu.py (add one)"
    if device.type == "cpu":
        return measured_cpu_peak("bf16" if dtype == "bf16" else "fp32"), "CPU, measured matmul peak"
    return None, f"{device.type}: unknown peak"


def mfu(flops_per_token: float, tokens_per_s: float, peak: float | None) -> float | None:
    return None if not peak else flops_per_token * tokens_per_s / peak
