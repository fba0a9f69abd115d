"""A tiny study end to end: every stage, the report files, and a re-run that skips finished stages."""

import json

import pytest

from physrnn.cli import main
from physrnn.study import study_from_dict

ENSEMBLE = {"system": "oscillator", "n_traj": 6, "dt": 0.05, "t_end": 4.0, "seed": 1,
            "params": {"damping": 0.2, "drive_amplitude": 0.5, "drive_frequency": 1.3}}
TINY = f"""
[study]
name = "tiny"
description = "smoke"
seeds = [0, 1]
baselines = ["euler", "linear"]
[features]
observation = "full"
[train]
{chr(10).join(f'{k} = {json.dumps(v)}' for k, v in ENSEMBLE.items() if k != 'params')}
params = {{ damping = 0.2, drive_amplitude = 0.5, drive_frequency = 1.3 }}
[test]
system = "oscillator"
n_traj = 2
dt = 0.05
t_end = 6.0
seed = 2
params = {{ damping = 0.2, drive_amplitude = 0.5, drive_frequency = 1.3 }}
[models.esn]
units = 20
washout = 10
[targets]
linear = {{ rmse = 1e-9 }}
euler = {{ max_error = 1e-6 }}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_tiny_study_end_to_end_and_resume(tmp_path, tiny, capsys):
    root = tmp_path / "out"
    assert main(["study", str(tiny), "--root", str(root)]) == 0
    first = capsys.readouterr()
    report = root / "reports" / "tiny"
    for name in ("report.html", "report.md", "metrics.json", "metrics.csv", "results.json",
                 "figures/rollout.png", "figures/error.png", "figures/phase.png"):
        assert (report / name).is_file(), name
    results = json.loads((report / "results.json").read_text())
    by_label = {s["label"]: s for s in results["summary"]}
    assert by_label["esn"]["n_seeds"] == 2 and by_label["euler"]["n_seeds"] == 1  # physics baselines: no seed
    assert by_label["linear"]["rmse_mean"][0] < 1e-10  # exact on the linear oscillator
    assert by_label["euler"]["rmse_mean"][0] > 1e-3
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "physrnn study" in html  # self-contained, says how to reproduce
    assert "[train] esn seed 1" in first.err and "cached" not in first.err
    # The linear map meets its bound (exact); Euler's O(dt) error cannot meet 1e-6, and the report says so.
    assert [(t["label"], t["met"]) for t in results["targets"]] == [("linear", True), ("euler", False)]
    assert "target euler.max_error <= 1e-06: worst seed" in first.out and "NOT MET" in first.out
    assert "| euler | max_error |" in (report / "report.md").read_text()
    # Nothing changed: every stage is found, nothing is recomputed, the numbers are the same.
    assert main(["study", str(tiny), "--root", str(root)]) == 0
    second = capsys.readouterr().err
    assert "[train]" in second and all("cached" in line for line in second.splitlines() if line.startswith("[train]"))
    assert "[rollout]" not in second
    again = json.loads((report / "results.json").read_text())
    assert again["summary"] == results["summary"]
    assert main(["report", str(tiny), "--root", str(root)]) == 0


def test_bad_study_fails_before_any_work(tmp_path, tiny, capsys):
    tiny.write_text(TINY.replace("units = 20", "units = 0"))
    root = tmp_path / "out"
    try:
        code = main(["study", str(tiny), "--root", str(root)])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "[models.esn] units must be an integer >= 1, got 0" in err
    assert not root.exists()  # nothing was simulated or written


def test_the_shipped_studies_are_valid():
    from pathlib import Path

    from physrnn.study import load_study

    for path in sorted(Path(__file__).resolve().parents[2].joinpath("studies").glob("*.toml")):
        study = load_study(path)
        assert study_from_dict(study.to_dict()).to_dict() == study.to_dict()
