"""No TensorFlow before it is needed, and TensorFlow only under physrnn/models/.

Importing physrnn, validating every shipped study and sweep, the command line's help, ``inspect`` and
``evaluate`` must not import TensorFlow (5 s of start-up, and its log lines before any error of the user's).
"""

import ast
import subprocess
import sys
from pathlib import Path

import physrnn

PACKAGE = Path(physrnn.__file__).parent
REPO = PACKAGE.parent
FRAMEWORKS = {"tensorflow", "keras"}


def test_tensorflow_is_imported_only_under_physrnn_models():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in FRAMEWORKS]
    assert offenders == []


_NO_TF = """
import sys, glob, contextlib, io
import physrnn as pr
from physrnn.study import load_study
from physrnn.sweep import load_sweep
from physrnn.cli import main
for path in sorted(glob.glob("studies/*.toml")):
    load_study(path)
for path in sorted(glob.glob("studies/sweeps/*.toml")):
    load_sweep(path)
for argv in (["--help"], ["train", "--help"], ["simulate", "--help"], ["study", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
data, rollout = sys.argv[1], sys.argv[2]
assert main(["inspect", data]) == 0
assert main(["evaluate", rollout]) == 0
assert main(["sweep", "studies/sweeps/gru-demo.toml", "--dry-run"]) == 0
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
print("LOADED", loaded)
"""


def test_validating_every_shipped_config_and_the_light_commands_import_no_tensorflow(tmp_path):
    from physrnn.evaluation import rollout_to_file
    from physrnn.models import build_model
    from physrnn.data import FeatureSpec, build_step_data
    from simulators import EnsembleConfig, generate, write_trajectories

    truth = generate(EnsembleConfig.from_dict({"system": "oscillator", "n_traj": 2, "dt": 0.1, "t_end": 2.0,
                                               "seed": 0, "params": {"damping": 0.2}}))
    data = write_trajectories(tmp_path / "truth.h5", truth)
    model = build_model("euler").fit(build_step_data(truth, FeatureSpec(system="oscillator")))
    _, rollout = rollout_to_file(model, truth, data, [0, 1], tmp_path / "roll.h5")
    out = subprocess.run([sys.executable, "-c", _NO_TF, str(data), str(rollout)], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout, out.stdout[-500:]
