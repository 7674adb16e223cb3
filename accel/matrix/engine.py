"""The Docker engine through docker-py: connect, build with live output, run to completion, clean up.

Every failure is a :class:`StageError` naming the stage and a one-line reason (a full disk reads
``no space left on device``), so that one cell's failure never stops the others.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient

LABEL = "org.accel.matrix"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


class StageError(Exception):
    """A stage of a cell failed; ``stage`` names it in the status word."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason

    @property
    def environmental(self) -> bool:
        """True when the host, not accel, is at fault (disk full, engine gone): ``not built``."""
        text = self.reason.lower()
        keys = ("no space left", "engine not reachable", "connection aborted", "disk full", "time limit")
        return self.stage == "time limit" or any(key in text for key in keys)


def connect(timeout: int = 1800) -> DockerClient:
    """A client for the local engine; StageError('engine', ...) when none answers."""
    try:
        import docker.errors

        import docker
    except ImportError:
        raise StageError("engine", "docker-py is missing: pip install 'accel[matrix]' (or docker>=7)") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
        raise StageError(
            "engine", f"Docker engine not reachable ({reason}); start dockerd or set DOCKER_HOST"
        ) from None
    return client


def nvidia_runtime(client: DockerClient) -> bool:
    """Whether the engine can give containers GPUs (an ``nvidia`` runtime is registered)."""
    runtimes = client.info().get("Runtimes") or {}
    return "nvidia" in runtimes


def image_present(client: DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build(
    client: DockerClient,
    context: IO[bytes],
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    target: str | None,
    on_step: Callable[[str], None],
    stage: str = "build",
) -> int:
    """Build ``tag`` from a tar ``context`` (legacy builder); report each ``Step n/m``; return its size."""
    import docker.errors

    last: list[str] = []
    try:
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            target=target,
            network_mode="host",
            rm=True,
            forcerm=True,
            pull=False,
            labels={LABEL: "1"},
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise StageError(stage, _reason(str(chunk["error"]), last))
            for line in ANSI.sub("", str(chunk.get("stream", ""))).splitlines():
                line = line.strip()
                if not line or line.startswith(("Removing intermediate", "---> ")):
                    continue
                last = [*last[-3:], line]
                step = STEP.match(line)
                if step:
                    on_step(f"step {step[1]}/{step[2]}: {step[3][:90]}")
    except docker.errors.APIError as exc:
        raise StageError(stage, _reason(str(exc.explanation or exc), last)) from None
    except OSError as exc:
        raise StageError(stage, _reason(str(exc), last)) from None
    return int(client.images.get(tag).attrs["Size"])


def _reason(error: str, last: list[str]) -> str:
    error = " ".join(ANSI.sub("", error).split())
    if "no space left on device" in error.lower():
        return f"disk full (no space left on device): {error[:160]}"
    tail = [line for line in last if line not in error][-2:]
    return " / ".join([*tail, error])[-300:]


def run(
    client: DockerClient,
    image: str,
    command: list[str],
    stage: str,
    timeout: float = 900,
    entrypoint: list[str] | None = None,
    **kwargs: Any,
) -> tuple[int, str, float]:
    """Run to completion: (exit code, stdout+stderr, seconds). StageError on a timeout or engine error."""
    import docker.errors
    import requests.exceptions

    start = time.monotonic()
    try:
        container = client.containers.run(
            image, command, detach=True, labels={LABEL: "1"}, entrypoint=entrypoint, **kwargs
        )
    except docker.errors.DockerException as exc:
        raise StageError(stage, _reason(str(exc), [])) from None
    try:
        try:
            status = container.wait(timeout=timeout)
        except requests.exceptions.ConnectionError:
            raise StageError(stage, f"no exit within {timeout:.0f} s") from None
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return int(status.get("StatusCode", -1)), logs, time.monotonic() - start
    finally:
        try:
            container.remove(force=True)
        except docker.errors.DockerException:
            pass


def checked(code: int, logs: str, stage: str) -> str:
    """``logs`` when ``code`` is 0; otherwise StageError with the last lines."""
    if code != 0:
        tail = " | ".join(line.strip() for line in logs.strip().splitlines()[-3:])[-300:]
        raise StageError(stage, f"exit code {code}: {tail}")
    return logs


def remove_image(client: DockerClient, tag: str) -> bool:
    """Remove an image this runner built (by tag); False when it was not there."""
    import docker.errors

    try:
        client.images.remove(tag, force=True, noprune=False)
    except docker.errors.ImageNotFound:
        return False
    return True


def prune_builder_leftovers(client: DockerClient) -> None:
    """Remove the dangling builder-stage images accel's Dockerfile leaves (label org.accel.managed)."""
    import docker.errors

    try:
        client.images.prune(filters={"dangling": True, "label": "org.accel.managed=1"})
    except docker.errors.DockerException:
        pass


def tag_parent(client: DockerClient, image: str, tag: str) -> int:
    """Tag the parent of ``image`` as ``tag`` (the runtime target under the dev one); its size."""
    parent = str(client.images.get(image).attrs.get("Parent") or "")
    if not parent:
        raise StageError("build", f"{image} has no parent image to tag as {tag}")
    repository, _, name = tag.rpartition(":")
    client.images.get(parent).tag(repository, name)
    return int(client.images.get(tag).attrs["Size"])
