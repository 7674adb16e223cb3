"""Make a built image bit-for-bit reproducible: rewrite its layers and config, then load it back.

The legacy builder (``docker build`` without buildx, docker-py) stamps build times into every
layer (file mtimes), writes layer entries in directory order, and records the build container,
its hostname and the intermediate image in the config. BuildKit's ``rewrite-timestamp`` and
``SOURCE_DATE_EPOCH`` support are not available to it. So after the build:

1. ``docker save`` the image;
2. rewrite each layer that is not the base image's: entries sorted by path, mtimes clamped to
   SOURCE_DATE_EPOCH (the commit time), access/change times dropped; hard links keep pointing
   at the first entry of their group;
3. rewrite the config: ``created`` and every history ``created`` set to SOURCE_DATE_EPOCH, the
   build container's fields and the parent image id removed, new layer digests, extra labels;
4. ``docker load`` the result under the same tag. The image ID is the sha256 of the config, so
   two builds from the same inputs give the same ID.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

DROPPED_PAX = ("atime", "ctime", "mtime")


@dataclass
class Normalised:
    image_id: str
    diff_ids: list[str]
    rewritten: int


def _copy(member: tarfile.TarInfo, **changes: object) -> tarfile.TarInfo:
    """A changed copy of a header (TarInfo.replace is missing from Debian bookworm's Python 3.11.2)."""
    info = copy.copy(member)
    info.pax_headers = dict(member.pax_headers)
    for key, value in changes.items():
        setattr(info, key, value)
    return info


def _clamped(member: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    member.mtime = min(int(member.mtime), epoch)
    member.pax_headers = {k: v for k, v in member.pax_headers.items() if k not in DROPPED_PAX}
    return member


def rewrite_layer(source: IO[bytes], dest: IO[bytes], epoch: int) -> str:
    """Write ``source`` (a layer tar, seekable) to ``dest`` normalised; return its sha256 (the diff id)."""
    digest = hashlib.sha256()

    class Hashing:
        def write(self, data: bytes) -> int:
            digest.update(data)
            return dest.write(data)

    with tarfile.open(fileobj=source, mode="r:") as layer:
        members = sorted(layer.getmembers(), key=lambda m: m.name)
        # Hard links must follow the entry they name; after sorting the first path of a group carries the data.
        groups: dict[str, list[tarfile.TarInfo]] = {}
        for member in members:
            if member.islnk():
                groups.setdefault(member.linkname, []).append(member)
        first: dict[str, str] = {}
        by_name = {m.name: m for m in members}
        for target, links in groups.items():
            names = sorted([target, *(link.name for link in links)])
            first[target] = names[0]
        with tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as out:  # type: ignore[call-overload]
            for member in members:
                if member.islnk() and member.linkname in first:
                    head = first[member.linkname]
                    if head == member.name:  # this link now carries the data of its target
                        data_from = by_name[member.linkname]
                        info = _clamped(_copy(data_from, name=member.name), epoch)
                        out.addfile(info, layer.extractfile(data_from))
                    else:
                        out.addfile(_clamped(_copy(member, linkname=head), epoch))
                elif member.name in first and first[member.name] != member.name:
                    info = _clamped(_copy(member, type=tarfile.LNKTYPE, linkname=first[member.name], size=0), epoch)
                    out.addfile(info)
                elif member.isfile():
                    out.addfile(_clamped(member, epoch), layer.extractfile(member))
                else:
                    out.addfile(_clamped(member, epoch))
    return "sha256:" + digest.hexdigest()


def normalise_config(config: dict[str, Any], diff_ids: list[str], epoch: int, labels: dict[str, str]) -> bytes:
    created = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {k: v for k, v in config.items() if k not in ("container", "container_config")}
    config["created"] = created
    config["history"] = [{**h, "created": created} for h in config.get("history", [])]
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    inner = dict(config.get("config") or {})
    inner["Image"] = ""
    inner["Hostname"] = ""
    inner["Labels"] = {**(inner.get("Labels") or {}), **labels}
    config["config"] = inner
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def base_layers(image: str) -> list[str]:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def normalise(tag: str, base: str, epoch: int, labels: dict[str, str], scratch: Path) -> Normalised:
    """Normalise image ``tag`` (built on ``base``) in place: same tag, reproducible ID."""
    keep = base_layers(base)
    with tempfile.TemporaryDirectory(prefix="normalise-", dir=scratch) as tmp:
        raw = Path(tmp) / "raw.tar"
        subprocess.run(["docker", "save", "-o", str(raw), tag], check=True)
        with tarfile.open(raw) as saved:
            manifest = json.load(_member(saved, "manifest.json"))[0]
            config = json.load(_member(saved, manifest["Config"]))
            old_ids = config["rootfs"]["diff_ids"]
            layers: list[Path] = []
            diff_ids: list[str] = []
            rewritten = 0
            for index, (path, diff_id) in enumerate(zip(manifest["Layers"], old_ids, strict=False)):
                dest = Path(tmp) / f"layer{index:03d}.tar"
                with dest.open("wb") as out:
                    if index < len(keep) and keep[index] == diff_id:
                        shutil.copyfileobj(_member(saved, path), out, 1 << 20)
                        diff_ids.append(diff_id)
                    else:
                        diff_ids.append(rewrite_layer(_member(saved, path), out, epoch))
                        rewritten += 1
                layers.append(dest)
        blob = normalise_config(config, diff_ids, epoch, labels)
        image_id = hashlib.sha256(blob).hexdigest()
        load(tag, blob, image_id, layers)
    return Normalised("sha256:" + image_id, diff_ids, rewritten)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    handle = tar.extractfile(name)
    if handle is None:
        raise RuntimeError(f"docker save output lacks {name}")
    return handle


def load(tag: str, config: bytes, image_id: str, layers: list[Path]) -> None:
    """``docker load`` an image given as its config and layer tars (docker save's format)."""
    proc = subprocess.Popen(["docker", "load", "--quiet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    names = [f"{index:03d}/layer.tar" for index in range(len(layers))]
    manifest = [{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": names}]
    with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as out:
        for name, data in _entries(config, image_id, manifest):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            out.addfile(info, _bytes(data))
        for name, path in zip(names, layers, strict=False):
            out.add(path, arcname=name)
    proc.stdin.close()
    output = proc.stdout.read().decode() if proc.stdout else ""
    if proc.wait() != 0:
        raise RuntimeError(f"docker load of the normalised {tag} failed: {output.strip()}")


def _entries(config: bytes, image_id: str, manifest: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    yield f"{image_id}.json", config
    yield "manifest.json", json.dumps(manifest).encode()


def _bytes(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)
