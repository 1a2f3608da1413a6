"""The import rules of the README's picture, checked on the source: every arrow points one way.

Each package lists the packages it may import. `cli` (the command people type) sits on top; `harness`
(local processes) and `benchmarks` serve it; `batch` (offline batches) serves it and the gateway; the
runtime (`worker`) and the producer side (`api_client`) share the contract (`tasks`), which rests on the
engine contract (`engines`).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api_client", "batch", "benchmarks", "cli", "engines", "gateway", "harness", "tasks", "worker")

MAY_IMPORT = {
    "engines": {"engines"},
    "tasks": {"tasks", "engines"},
    "api_client": {"api_client", "tasks", "engines"},
    # the Batch API runs its lines on the shared batch core
    "gateway": {"gateway", "batch", "api_client", "tasks", "engines"},
    # offline batches: lines, datasets, the window of jobs, files; the OpenAI line shapes are the gateway's
    "batch": {"batch", "api_client", "tasks", "engines"},
    "worker": {"worker", "tasks", "engines"},
    "harness": {"harness", "tasks", "engines", "worker"},
    "benchmarks": {"benchmarks", "batch", "harness", "api_client", "tasks", "engines"},
    "cli": {"cli", "batch", "benchmarks", "gateway", "harness", "api_client", "worker", "tasks", "engines"},
}
# The engine contract (everything in engines/ but the backends) imports no backend; a backend imports
# the contract and itself, never another backend.
BACKENDS = ("engines.hf", "engines.vllm", "engines.sglang", "engines.echo")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found.append((module, path))
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def _backend(module: str) -> str | None:
    return next((b for b in BACKENDS if module == b or module.startswith(b + ".")), None)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[module for module, _ in _modules()])
def test_imports_point_one_way(module, path):
    package = module.split(".")[0]
    for imported in _imports(path):
        assert imported.split(".")[0] in MAY_IMPORT[package], f"{module} imports {imported}"
        if package == "engines" and _backend(imported) is not None:
            assert _backend(imported) == _backend(module), f"{module} imports the backend {imported}"


def test_the_rules_catch_a_wrong_arrow(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from cli.main import main\nimport worker.app\n")
    assert _imports(wrong) == {"cli.main", "worker.app"}
    assert "cli" not in MAY_IMPORT["worker"] and "worker" not in MAY_IMPORT["api_client"]
