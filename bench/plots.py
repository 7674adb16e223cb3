"""PNG plots of the cost curves, drawn from the JSON results the benchmark scripts write.

usage: python bench/plots.py [--results bench/results] [--out bench/plots]

Needs matplotlib (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _figure(title: str, xlabel: str, ylabel: str, log: bool = True) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _save(fig: Any, ax: Any, path: Path) -> Path:
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def step_plots(data: dict[str, Any], out: Path) -> list[Path]:
    paths = []
    for key, xlabel, name in (
        ("tensors", "parameter tensors", "step_vs_tensors.png"),
        ("accum", "accumulation steps", "step_vs_accumulation.png"),
    ):
        rows = data[key]
        xs = [int(x) for x in rows]
        fig, ax = _figure(f"per-step overhead vs {xlabel} (1 process)", xlabel, "µs per micro-step")
        ax.plot(xs, [r["plain_us"] for r in rows.values()], "o-", label="plain PyTorch step")
        ax.plot(xs, [r["accel_us"] for r in rows.values()], "s-", label="accel step")
        ax.errorbar(
            xs,
            [r["overhead_us"] for r in rows.values()],
            yerr=[
                [r["overhead_us"] - r["lo"] for r in rows.values()],
                [r["hi"] - r["overhead_us"] for r in rows.values()],
            ],
            fmt="^-",
            label="overhead (accel - plain), block range",
        )
        ax.set_yscale("symlog", linthresh=10)
        paths.append(_save(fig, ax, out / name))
    return paths


def dist_plots(data: dict[str, Any], out: Path) -> list[Path]:
    fig, ax = _figure("gather_for_metrics vs tensor size", "float32 elements per rank", "ms per call")
    for world, d in data["gather"].items():
        xs = [int(n) for n in d["gather"]]
        ax.plot(xs, [v["accel"] * 1e3 for v in d["gather"].values()], "o-", label=f"accel, {world} proc")
        ax.plot(xs, [v["raw"] * 1e3 for v in d["gather"].values()], "x--", label=f"all_gather_single, {world} proc")
    ax.set_yscale("log")
    paths = [_save(fig, ax, out / "gather_vs_size.png")]
    fig, ax = _figure("prepare() vs model size", "parameters", "seconds")
    for world, d in data["gather"].items():
        xs = [float(p) for p in d["prepare"]]
        ax.plot(xs, [v["accel"] for v in d["prepare"].values()], "o-", label=f"prepare(), {world} proc")
        ax.plot(xs, [v["raw"] for v in d["prepare"].values()], "x--", label=f"raw DDP(model) / .to(), {world} proc")
    ax.set_yscale("log")
    paths.append(_save(fig, ax, out / "prepare_vs_size.png"))
    fig, ax = _figure("launch -> first optimizer step", "processes", "seconds", log=False)
    for name, rows in data["first"].items():
        xs = [int(w) for w in rows]
        meds = [sorted(v)[len(v) // 2] for v in rows.values()]
        lo = [m - min(v) for m, v in zip(meds, rows.values(), strict=True)]
        hi = [max(v) - m for m, v in zip(meds, rows.values(), strict=True)]
        ax.errorbar(xs, meds, yerr=[lo, hi], fmt="o-", capsize=3, label=name)
    ax.set_xticks([int(w) for w in data["first"]["accel"]])
    paths.append(_save(fig, ax, out / "first_step_vs_processes.png"))
    return paths


def ckpt_plots(data: dict[str, Any], out: Path) -> list[Path]:
    paths = []
    for op in ("save", "load"):
        fig, ax = _figure(f"checkpoint {op} vs model size (weights, cold cache for loads)", "parameters", "seconds")
        xs = [row["params"] for row in data["points"]]
        for impl, label in (("accel", f"{op}_state"), ("torch", f"torch.{op}"), ("safetensors", "safetensors")):
            ax.plot(xs, [row["median"][impl][op] for row in data["points"]], "o-", label=label)
        ax.set_yscale("log")
        paths.append(_save(fig, ax, out / f"checkpoint_{op}_vs_size.png"))
    return paths


def draw(results: Path, out: Path) -> list[Path]:
    """Draw every plot whose results exist; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    drawn: list[Path] = []
    for name, fn in (("step.json", step_plots), ("dist.json", dist_plots), ("ckpt_curve.json", ckpt_plots)):
        path = results / name
        if path.exists():
            drawn += fn(json.loads(path.read_text()), out)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=HERE / "plots")
    args = parser.parse_args()
    for path in draw(args.results, args.out):
        print(path)


if __name__ == "__main__":
    main()
