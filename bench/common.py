"""Small helpers shared by the benchmark scripts: summaries, machine load, machine description."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def load_range(samples: Sequence[float]) -> str:
    """'a-b on N cores' for load averages sampled during a run."""
    return f"{min(samples):.1f}-{max(samples):.1f} on {os.cpu_count()} cores"


def spread(values: Sequence[float], fmt: str = "{:.0f}", unit: float = 1.0) -> str:
    """'median [min-max]'."""
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(med * unit)} [{fmt.format(low * unit)}-{fmt.format(high * unit)}]"


def machine() -> str:
    """One line naming the machine: CPU model, cores, memory, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, torch {torch.__version__}, no GPU"
        if not torch.cuda.is_available()
        else f"{cpu}, {torch.cuda.get_device_name(0)}, Python {platform.python_version()}, torch {torch.__version__}"
    )
