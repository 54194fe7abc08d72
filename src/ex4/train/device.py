"""Which device trains, and what the CPU can really do (its model and instruction-set flags).

bf16 autocast only pays where the CPU has bf16 instructions (AVX512_BF16 or AMX-BF16 on x86, the BF16
extension on Arm): elsewhere oneDNN emulates it and a ResNet18 step is about 1.7x *slower* than float32.
Neither `torch.ops.mkldnn._is_mkldnn_bf16_supported()` (true on any AVX-512 CPU) nor
`torch.backends.cpu.get_cpu_capability()` ("AVX512" with or without bf16) tells the two apart, so the
decision reads the flags the kernel reports in /proc/cpuinfo. Where that file does not exist (macOS,
Windows) no flag is known and float32 is chosen: slower at worst, never emulated.

`EX4_IGNORE_CPU_FLAGS` (flag names, separated by commas or spaces; e.g. `avx512_bf16,amx_bf16`) makes ex4 act
as if the CPU lacked those flags: it measures the path a CPU without bf16 takes on one that has it
(`benchmarks/section7.py --without-bf16`, `benchmarks/cold_report.py --without-bf16`), or keeps a bf16 CPU on
float32. The flags as seen are what enter the Section 7 store keys and every printed CPU description says which
were ignored, so results made with and without it are never mixed up.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from pathlib import Path

import torch

from ex4.errors import Ex4Error

CPUINFO = Path("/proc/cpuinfo")
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # VDPBF16PS (AVX512_BF16) or the AMX tile bf16 unit
ARM_BF16_FLAGS = ("bf16",)  # FEAT_BF16 (BFDOT/BFMMLA), e.g. Graviton3, Neoverse V1/V2
IGNORE_FLAGS_VARIABLE = "EX4_IGNORE_CPU_FLAGS"
FLAG_NAME = re.compile(r"[a-z0-9_.]+")


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


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo, or "" where there is none."""
    try:
        return CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _first_field(cpuinfo: str, names: tuple[str, ...]) -> str:
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in names:
            return value.strip()
    return ""


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """Instruction-set flags of the first processor listed: `flags` on x86, `Features` on Arm."""
    return frozenset(_first_field(cpuinfo, ("flags", "features")).lower().split())


def ignored_cpu_flags() -> frozenset[str]:
    """The flag names `EX4_IGNORE_CPU_FLAGS` lists (lower case); Ex4Error naming the variable for a malformed one."""
    names = frozenset(os.environ.get(IGNORE_FLAGS_VARIABLE, "").lower().replace(",", " ").split())
    bad = sorted(name for name in names if not FLAG_NAME.fullmatch(name))
    if bad:
        raise Ex4Error(f"{IGNORE_FLAGS_VARIABLE}: {bad[0]!r} is not a CPU flag name (expected names such as "
                       "avx512_bf16,amx_bf16 separated by commas or spaces)")
    return names


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's flags, less those `EX4_IGNORE_CPU_FLAGS` lists (read once per process)."""
    return parse_cpu_flags(read_cpuinfo()) - ignored_cpu_flags()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's name as the OS reports it (e.g. 'Intel(R) Xeon(R) CPU @ 2.00GHz')."""
    return _first_field(read_cpuinfo(), ("model name", "hardware", "cpu model")) or platform.processor() \
        or platform.machine() or "unknown CPU"


def native_bf16_flags(flags: frozenset[str] | None = None) -> list[str]:
    """The bf16 instruction-set flags this CPU has (empty: bf16 would be emulated)."""
    flags = cpu_flags() if flags is None else flags
    arm = platform.machine().lower() in ("aarch64", "arm64")
    return sorted(flag for flag in (ARM_BF16_FLAGS if arm else X86_BF16_FLAGS) if flag in flags)


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU executes bf16 arithmetic natively (and oneDNN, which runs the bf16 kernels, is built in)."""
    return bool(native_bf16_flags(flags)) and torch.backends.mkldnn.is_available()


def cpu_description(flags: frozenset[str] | None = None) -> str:
    """'<model>, <n> cores, AVX-512 yes, bf16 flags avx512_bf16' — printed with every timing."""
    flags = cpu_flags() if flags is None else flags
    bf16 = ", ".join(native_bf16_flags(flags)) or "none (bf16 would be emulated)"
    amx = "yes" if {"amx_tile", "amx_bf16"} & flags else "no"
    ignored = sorted(ignored_cpu_flags() & parse_cpu_flags(read_cpuinfo()))
    return (f"{cpu_model()}, {os.cpu_count()} cores, AVX-512 {'yes' if 'avx512f' in flags else 'no'}, "
            f"AMX {amx}, bf16 flags: {bf16}"
            + (f" ({IGNORE_FLAGS_VARIABLE} ignores {', '.join(ignored)})" if ignored else ""))
