"""The README's Python examples (```python blocks) run as written, in a scratch folder, so they write nothing
here. A ```py block needs what a test machine lacks (the dask-jobqueue cluster on a batch system): shown, not run."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python example"
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    # The example prints Euler's RMSE against the closed form: the value an independent computation gives
    # (to the digits printed), and far from zero (Euler at Δt = 0.05 is off by ~0.1 in x here).
    import numpy as np
    from simulators import LinearOscillator, solve

    osc = LinearOscillator(damping=0.2, natural_frequency=1.0, drive_amplitude=0.5, drive_frequency=1.3)
    t = np.arange(2001) * 0.05
    errors = solve(osc, [[0.7, -0.3]], t, method="euler") - solve(osc, [[0.7, -0.3]], t)
    rmse = float(re.search(r"Euler RMSE of x: ([0-9.e-]+)", out).group(1))
    assert rmse == float(np.sqrt(np.mean(errors[0, :, 0] ** 2))) and rmse > 0.01
    # The learning example: the linear map is exact on the linear oscillator (rounding, ~1e-15), the ESN
    # close to it (~1e-7 measured), Euler at Δt = 0.05 off by ~0.1.
    learned = {m: float(v) for m, v in re.findall(r"(\w+) +closed-loop RMSE ([0-9.e+-]+)", out)}
    assert learned["linear"] < 1e-10 and learned["esn"] < 1e-5 and learned["euler"] > 1e-2, learned
    assert (tmp_path / "esn.keras").is_file()
    # The study ends in a report, written where the example says.
    assert float(re.search(r"ESN RMSE of x over 2 seeds: ([0-9.e+-]+)", out).group(1)) < 1e-5
    assert (tmp_path / "data" / "reports" / "readme" / "report.html").is_file()
