"""Build one cell twice without cache and compare: is the image bit-for-bit reproducible?

    python3 docker/reproduce.py [--cell ID] [--json PATH]

Both builds take the path users take (docker/bootstrap.py's image step: lock, checked
wheelhouse, `docker build --no-cache`, normalisation). The table compares the lock digest, the
venv digest, the image ID and every layer (by diff id, named by the instruction that made it).
When layers differ, the first differing files of each are listed (path and what differs). The
result is also written as JSON (default .cache/reproduce/<cell>.json) for the matrix report's
`reproducible` column. Exit status 0 when the image IDs match, 1 when they do not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bases import say, scratch
from cells import CACHE, BuildInputError, Cell, find_cell, load_matrix
from imagebuild import build_image, image_tag

FIRST_FILES = 5


def describe(image: str) -> dict[str, object]:
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)[0]
    labels = info["Config"].get("Labels") or {}
    history = [h.get("CreatedBy", "") for h in image_history(image)]
    return {
        "id": info["Id"],
        "lock": labels.get("org.accel.lock.sha256", ""),
        "venv": labels.get("org.accel.venv.sha256", ""),
        "layers": info["RootFS"]["Layers"],
        "history": history,
    }


def image_history(image: str) -> list[dict[str, str]]:
    """The instructions that made a layer (RUN, COPY, ADD, import), oldest first."""
    out = subprocess.run(
        ["docker", "image", "history", "--no-trunc", "--format", "{{json .}}", image], capture_output=True, text=True
    )
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    made = []
    for row in reversed(rows):
        created_by = str(row.get("CreatedBy", ""))
        if "#(nop)" not in created_by or "#(nop) COPY" in created_by or "#(nop) ADD" in created_by:
            made.append({"CreatedBy": created_by.replace("#(nop) ", "") or "import"})
    return made


def layer_entries(path: Path) -> dict[str, str]:
    """{path: mode, mtime, type and content sha256} of a layer tar."""
    entries = {}
    with tarfile.open(path) as tar:
        for member in tar:
            value = f"mode {member.mode:o} mtime {member.mtime} type {member.type.decode()}"
            if member.isfile():
                handle = tar.extractfile(member)
                value += f" sha256 {hashlib.sha256(handle.read() if handle else b'').hexdigest()[:12]}"
            elif member.issym() or member.islnk():
                value += f" -> {member.linkname}"
            entries[member.name] = value
    return entries


def first_differences(first: str, second: str, indices: list[int]) -> dict[int, list[str]]:
    """The first differing files of each differing layer (from `docker save` of both images)."""
    found: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="reproduce-", dir=scratch()) as tmp:
        layers: list[list[Path]] = []
        for name, image in (("a", first), ("b", second)):
            folder = Path(tmp) / name
            folder.mkdir()
            subprocess.run(["docker", "save", "-o", str(folder / "image.tar"), image], check=True)
            with tarfile.open(folder / "image.tar") as saved:
                handle = saved.extractfile("manifest.json")
                manifest = json.load(handle) if handle else [{"Layers": []}]
                saved.extractall(folder)
            layers.append([folder / layer for layer in manifest[0]["Layers"]])
        for index in indices:
            a, b = layer_entries(layers[0][index]), layer_entries(layers[1][index])
            lines = []
            for path in sorted(a.keys() | b.keys()):
                if a.get(path) != b.get(path):
                    lines.append(f"{path}: {a.get(path, 'absent')} | {b.get(path, 'absent')}")
                if len(lines) == FIRST_FILES:
                    break
            found[index] = lines
    return found


def short(value: object) -> str:
    text = str(value).removeprefix("sha256:")
    return text[:16] if text else "-"


def table(cell: Cell, a: dict[str, object], b: dict[str, object], seconds: list[float]) -> tuple[list[str], list[int]]:
    rows = [
        ("lock sha256", a["lock"], b["lock"]),
        ("venv sha256", a["venv"], b["venv"]),
        ("image ID", a["id"], b["id"]),
    ]
    layers_a, layers_b = list(a["layers"]), list(b["layers"])  # type: ignore[call-overload]
    history = list(a["history"])  # type: ignore[call-overload]
    offset = len(layers_a) - len(history)
    differing = []
    for index, (x, y) in enumerate(zip(layers_a, layers_b, strict=False)):
        made_by = history[index - offset] if 0 <= index - offset < len(history) else "base"
        made_by = made_by.split(" -c ", 1)[-1].strip()
        rows.append((f"layer {index + 1}: {made_by[:38]}", x, y))
        if x != y:
            differing.append(index)
    width = max(len(r[0]) for r in rows)
    lines = [f"reproducibility of {image_tag(cell)}: two `docker build --no-cache` builds "
             f"({seconds[0]:.0f} s, {seconds[1]:.0f} s)", ""]  # fmt: skip
    lines.append(f"{'':{width}}  {'build 1':16}  {'build 2':16}  match")
    for name, x, y in rows:
        lines.append(f"{name:{width}}  {short(x):16}  {short(y):16}  {'yes' if x == y and x else 'NO'}")
    return lines, differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cell", help="a cell id from docker/matrix.json (default: the cell marked default)")
    parser.add_argument("--json", type=Path, help="where to write the result (default .cache/reproduce/<cell>.json)")
    args = parser.parse_args(argv)
    cell = find_cell(load_matrix(), args.cell)
    tag, keep = image_tag(cell), f"accel-cache:{cell['id']}-first"
    seconds = []
    start = time.monotonic()
    build_image(cell, force=True, no_cache=True)
    seconds.append(time.monotonic() - start)
    subprocess.run(["docker", "tag", tag, keep], check=True)
    first = describe(keep)
    start = time.monotonic()
    build_image(cell, force=True, no_cache=True)
    seconds.append(time.monotonic() - start)
    second = describe(tag)
    lines, differing = table(cell, first, second, seconds)
    if differing:
        for index, files in first_differences(keep, tag, differing).items():
            lines.append(f"layer {index + 1}: first differing files (build 1 | build 2):")
            lines += [f"  {line}" for line in files]
    same = first["id"] == second["id"]
    lines.append(f"reproducible: {'yes' if same else 'no'}")
    subprocess.run(["docker", "rmi", keep], capture_output=True)
    print("\n".join(lines))
    out = args.json or CACHE / "reproduce" / f"{cell['id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"cell": cell["id"], "reproducible": same, "image": second["id"], "venv": second["venv"]}
    out.write_text(json.dumps({**result, "lock": second["lock"], "table": lines}, indent=1) + "\n")
    say(f"wrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildInputError as exc:
        print(f"reproduce: {exc}", file=sys.stderr)
        sys.exit(2)
