"""The shape of the code: no import circles, checkpoint code on typed parts, no strategy-name tests.

These read the sources (``ast``), so they run in milliseconds and say which file and line broke a rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import accel
from accel import env
from accel.config import KEYS, env_variable

PACKAGE = Path(accel.__file__).parent
ROOT = PACKAGE.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """accel modules ``path`` imports at run time (module level or inside functions; not for type checking)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in MODULES:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


#: Circles through a function-level import, to be untied (the dispatching belongs to the caller).
KNOWN_LAZY_CIRCLES = {("accel.data", "accel.dispatch"), ("accel.matrix.runner", "accel.matrix.user")}


def test_no_import_cycles_among_accel_modules() -> None:
    graph = {name: _imports(path) - {name} for name, path in MODULES.items()}
    for first, second in KNOWN_LAZY_CIRCLES:
        graph[first].discard(second)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _private_members() -> set[str]:
    names: set[str] = set()
    for module in ("accel.accelerator", "accel.persistence", "accel.process", "accel.coordination"):
        if module not in MODULES:
            continue
        for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
            is_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
            if is_self and node.attr.startswith("_") and not node.attr.startswith("__"):
                names.add(node.attr)
    return names


def _checkpoint_files() -> list[Path]:
    return [path for name, path in MODULES.items() if name.startswith("accel.checkpoint")]


def test_checkpoint_code_uses_typed_parts_not_the_accelerator() -> None:
    private = _private_members()
    assert "_models" in private  # the rule below means something
    problems = []
    for path in _checkpoint_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = _imports(path)
        problems += [f"{path.name} imports {m}" for m in sorted(imported & {"accel.accelerator", "accel.persistence"})]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                owner = ast.unparse(node.value)
                if owner != "self":
                    problems.append(f"{path.name}:{node.lineno} reads {owner}.{node.attr}")
            if isinstance(node, ast.arg) and node.arg in ("acc", "accelerator"):
                problems.append(f"{path.name}:{node.lineno} takes the Accelerator ({node.arg})")
    assert not problems, problems


def test_no_strategy_name_comparisons() -> None:
    names = {"single", "ddp", "fsdp"}
    problems = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            texts = [ast.unparse(o) for o in operands]
            if any(re.search(r"strategy\.name$", t) for t in texts):
                problems.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            constants = {o.value for o in operands if isinstance(o, ast.Constant)}
            if name.startswith("accel.checkpoint") and constants & names:
                problems.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert not problems, problems


def test_manifest_reads_the_version_module_not_the_package_face() -> None:
    imports = _imports(MODULES["accel.checkpoint.manifest"])
    assert "accel.version" in imports
    assert "accel" not in imports


def test_every_environment_constant_is_used() -> None:
    sources = {name: path.read_text(encoding="utf-8") for name, path in MODULES.items() if name != "accel.env"}
    text = "\n".join(sources.values())
    config_variables = {env_variable(key) for key in KEYS}
    unused = [
        constant
        for constant, value in vars(env).items()
        if constant.isupper()
        and isinstance(value, str)
        and value not in config_variables
        and not re.search(rf"\benv\.{constant}\b", text)
    ]
    assert not unused, f"accel/env.py declares variables nothing reads or writes: {unused}"


def test_readme_layout_names_every_entry_of_the_package() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    entries = [
        p.name + ("/" if p.is_dir() else "")
        for p in sorted(PACKAGE.iterdir())
        if not p.name.startswith(("_", ".")) and p.name != "py.typed"
    ]
    missing = [entry for entry in entries if not re.search(rf"(?<![\w/]){re.escape(entry)}", section)]
    assert not missing, f"README's layout section does not mention {missing}"
