"""docker/matrix.json through the cell model: validation, the 16 cells, and every repeated pin agrees."""

from __future__ import annotations

import configparser
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from accel.matrix.model import Cell, Matrix, MatrixError, load, parse

PYTHONS = ("3.10", "3.11", "3.12", "3.13")


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(ROOT)


def raw_matrix() -> dict[str, Any]:
    return json.loads((ROOT / "docker" / "matrix.json").read_text())


def dockerfile_args(path: Path) -> dict[str, str]:
    """``ARG NAME=default`` lines of a Dockerfile (the first default of each name)."""
    args: dict[str, str] = {}
    for match in re.finditer(r"^ARG (\w+)=(\S*)$", path.read_text(), re.MULTILINE):
        args.setdefault(match[1], match[2])
    return args


def compose_default(value: str) -> str:
    """``${VAR:-default}`` -> default; a plain value stays as it is."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}(.*)", value)
    return match[1] + match[2] if match else value


# --- the cells -------------------------------------------------------------------------------


def test_sixteen_cells_python_by_libc_by_variant(matrix: Matrix) -> None:
    seen = {(c.python, c.libc, c.variant) for c in matrix.cells}
    assert len(matrix.cells) == 16
    assert seen == set(itertools.product(PYTHONS, ("glibc", "musl"), ("cpu", "cuda")))
    assert matrix.default.id == "py3.11-cpu"
    assert [c.id for c in matrix.cells if c.ci] == ["py3.11-cpu"], "CI builds exactly one cell"


def test_cells_are_consistent(matrix: Matrix) -> None:
    for cell in matrix.cells:
        assert cell.id.startswith(f"py{cell.python}-") and cell.id.endswith(f"-{cell.variant}"), cell
        assert cell.platforms == matrix.platform_tags[cell.libc]
        assert cell.torch.endswith("+cpu") == (cell.variant == "cpu" and cell.libc == "glibc"), cell
        if cell.libc == "glibc":
            assert cell.base == f"python:{cell.python}-slim-bookworm" and cell.dockerfile == "Dockerfile"
        else:
            alpine = cell.os.removeprefix("alpine-")
            assert cell.base == f"python:{cell.python}-alpine{alpine}"
            assert cell.dockerfile == "docker/alpine.Dockerfile"


def test_unsupported_rows_follow_requires_python(matrix: Matrix) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'^requires-python = ">=(3\.\d+)"$', pyproject, re.MULTILINE)
    assert floor is not None
    rows = {row.environment: row.reason for row in matrix.unsupported}
    assert rows["Python 3.9"] == f"unsupported (accel requires Python >= {floor[1]})"
    assert min(PYTHONS, key=lambda v: tuple(map(int, v.split(".")))) == floor[1]


# --- validation: one line naming the cell and the cause --------------------------------------


def _broken(edit: Any) -> str:
    raw = raw_matrix()
    edit(raw)
    with pytest.raises(MatrixError) as info:
        parse(raw, Path("docker/matrix.json"))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_field_names_cell_and_field() -> None:
    message = _broken(lambda raw: raw["cells"][2].pop("torch"))
    assert message == "docker/matrix.json: cell 'py3.12-cpu': missing field 'torch'"


def test_duplicate_id_is_an_error() -> None:
    message = _broken(lambda raw: raw["cells"][3].update(id="py3.10-cpu"))
    assert "duplicate cell id 'py3.10-cpu'" in message


def test_unknown_variant_lists_the_choices() -> None:
    message = _broken(lambda raw: raw["cells"][1].update(variant="rocm"))
    assert message == "docker/matrix.json: cell 'py3.10-cpu': unknown variant 'rocm'; choose from cpu, cuda"


def test_unknown_field_and_missing_default() -> None:
    assert "unknown field 'pyhton'" in _broken(lambda raw: raw["cells"][0].update(pyhton="3.11"))
    assert "exactly one cell" in _broken(lambda raw: raw["cells"][0].pop("default"))


def test_unknown_cell_id(matrix: Matrix) -> None:
    with pytest.raises(MatrixError, match=r"unknown cell 'py3\.9-cpu'; docker/matrix.json has: py3\.11-cpu, "):
        matrix.select(["py3.11-cpu", "py3.9-cpu"])


def test_not_json(tmp_path: Path) -> None:
    (tmp_path / "matrix.json").write_text("{\n  'cells': []\n}\n")
    with pytest.raises(MatrixError, match=r"matrix.json: not JSON \(line 2"):
        load(tmp_path / "matrix.json")


def test_bootstrap_reports_a_malformed_matrix_in_one_line(tmp_path: Path) -> None:
    """docker/bootstrap.py reads the same model: a bad file stops it with the model's message."""
    (tmp_path / "docker").mkdir()
    raw = raw_matrix()
    raw["cells"][0]["variant"] = "tpu"
    (tmp_path / "docker" / "matrix.json").write_text(json.dumps(raw))
    for script in (ROOT / "docker").glob("*.py"):
        (tmp_path / "docker" / script.name).write_text(script.read_text())
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "accel").symlink_to(ROOT / "accel")
    cmd = [sys.executable, "docker/bootstrap.py", "wheels"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"bootstrap: {tmp_path}/docker/matrix.json: cell 'py3.11-cpu': unknown variant 'tpu'; choose from cpu, cuda"
    ]


# --- pins repeated outside matrix.json agree with it ------------------------------------------


def test_dockerfile_arg_defaults_are_the_default_cell(matrix: Matrix) -> None:
    cell = matrix.default
    args = dockerfile_args(ROOT / "Dockerfile")
    assert args["PYTHON_VERSION"] == cell.python
    assert args["VARIANT"] == cell.variant
    assert args["TORCH_VERSION"] == cell.torch
    assert "TORCH_INDEX_URL" not in args  # images install only locked wheels, never from an index
    assert args["BASE_IMAGE"].replace("${PYTHON_VERSION}", cell.python) == cell.base
    if "CELL" in args:
        assert args["CELL"].replace("${PYTHON_VERSION}", cell.python).replace("${VARIANT}", cell.variant) == cell.id


def test_alpine_dockerfile_defaults_are_a_cell(matrix: Matrix) -> None:
    args = dockerfile_args(ROOT / "docker" / "alpine.Dockerfile")
    base = f"python:{args['PYTHON_VERSION']}-alpine{args['ALPINE_VERSION']}"
    cells = [c for c in matrix.cells if c.base == base and c.variant == "cpu"]
    assert len(cells) == 1, base
    assert args["TORCH_VERSION"] == cells[0].torch


def test_python_slim_dockerfile_base_is_the_debian_image(matrix: Matrix) -> None:
    assert dockerfile_args(ROOT / "docker" / "python-slim.Dockerfile")["BASE"] == matrix.debian.image


def test_compose_defaults_are_the_default_cell(matrix: Matrix) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    cell = matrix.default
    args = {k: compose_default(v) for k, v in compose["x-build"]["args"].items()}
    assert (args["PYTHON_VERSION"], args["VARIANT"], args["TORCH_VERSION"]) == (cell.python, cell.variant, cell.torch)
    for name in ("train", "node0"):
        assert compose_default(compose["services"][name]["image"]) == cell.image, name
    gpu = compose["services"]["train-gpu"]
    cuda = matrix.find(compose_default(gpu["image"]).removeprefix("accel:"))
    assert (cuda.variant, cuda.python) == ("cuda", cell.python)
    # compose builds none of these: they run the images docker/bootstrap.py makes from the cell.
    assert all("build" not in compose["services"][name] for name in ("train", "node0", "train-gpu"))


def test_tox_takes_torch_from_the_model_not_a_pin_of_its_own() -> None:
    """tox.ini pins no torch: its envs install the file toxfile.py writes from the default cell."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    values = [value for section in parser.sections() for value in parser[section].values()]
    assert not [v for v in values if re.search(r"\btorch\s*[=<>~!]", v)]
    assert parser["testenv"]["deps"].split() == ["-r", "{toxworkdir}/host-requirements.txt"]
    assert parser["testenv"]["extras"] == "dev"
    assert parser["testenv:py3{10,12,13}"]["deps"].split() == ["-r", "{toxworkdir}/torch-requirements.txt"]
    matrix_env = parser["testenv:matrix"]
    assert matrix_env["skip_install"] == "true" and matrix_env["deps"].split() == ["docker>=7"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'matrix = ["docker>=7"]' in pyproject, "the matrix env installs what the matrix extra declares"


def test_cell_fields_round_trip(matrix: Matrix) -> None:
    raw = {c["id"]: c for c in raw_matrix()["cells"]}
    for cell in matrix.cells:
        assert isinstance(cell, Cell)
        assert all(getattr(cell, key) == value for key, value in raw[cell.id].items())
