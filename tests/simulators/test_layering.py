"""simulators/ is the physics layer: NumPy, SciPy and h5py only, never a learning framework or a cluster."""

import ast
import subprocess
import sys
from pathlib import Path

import simulators

FORBIDDEN = {"tensorflow", "keras", "torch", "jax", "physrnn", "dask", "distributed"}


def test_no_forbidden_import_statements():
    offenders = []
    for path in Path(simulators.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_the_whole_package_loads_no_framework():
    code = ("import sys, simulators, simulators.ensemble, simulators.trajectory_file; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(FORBIDDEN)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
