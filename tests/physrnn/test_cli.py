"""The `physrnn` command: simulate and inspect, and one-line errors with exit status 2 for bad input."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from physrnn.cli import main
from simulators.trajectory_file import read_trajectories

FLAGS = ["simulate", "--system", "oscillator", "--n-traj", "5", "--dt", "0.1", "--t-end", "2", "--seed", "3",
         "--quiet"]


def test_simulate_from_flags(tmp_path, capsys):
    out = tmp_path / "osc.h5"
    assert main(FLAGS + ["--param", "damping=uniform:0,0.5", "--param", "drive_amplitude=0.5",
                         "--param", "drive_frequency=1.3", "--output", str(out)]) == 0
    tr = read_trajectories(out)
    assert tr.states.shape == (5, 21, 2) and tr.drive.shape == (5, 21, 1)
    assert tr.attrs["config"]["params"]["damping"] == {"uniform": [0.0, 0.5]}
    assert 0.0 <= tr.params["damping"].min() and tr.params["damping"].max() < 0.5


def test_config_file_with_flag_overrides(tmp_path):
    cfg = tmp_path / "eig.toml"
    cfg.write_text(textwrap.dedent("""
        system = "eigen"
        n_traj = 4
        seed = 1
        dt = 0.1
        n_steps = 11
        [params]
        size = 3
        matrix = [[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """))
    out = tmp_path / "eig.h5"
    assert main(["simulate", "--config", str(cfg), "--n-traj", "6", "--quiet", "-o", str(out)]) == 0
    tr = read_trajectories(out)
    assert tr.n_traj == 6 and tr.n_state == 3
    np.testing.assert_allclose(tr.params["eigenvalues"][0], [1.0, 1.0, 3.0], atol=1e-14)


def test_same_command_same_data(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    main(FLAGS + ["-o", str(a)])
    main(FLAGS + ["-o", str(b)])
    np.testing.assert_array_equal(read_trajectories(a).states, read_trajectories(b).states)


def test_progress_bar_on_stderr(tmp_path, capsys):
    assert main([f for f in FLAGS if f != "--quiet"] + ["-o", str(tmp_path / "p.h5")]) == 0
    captured = capsys.readouterr()
    assert "5/5" in captured.err and "traj" in captured.err
    assert f"wrote {tmp_path / 'p.h5'}" in captured.out


def test_inspect_summarises(tmp_path, capsys):
    out = tmp_path / "osc.h5"
    main(FLAGS + ["-o", str(out)])
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "oscillator ensemble, method exact, seed 3" in text and "trajectories 5, steps 21" in text


def _bad_toml(tmp_path, body):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    return ["simulate", "--config", str(path)]


BAD = [
    (FLAGS + ["--dt", "0"], r"dt = 0\.0 must be > 0"),
    (FLAGS + ["--dt", "-0.1"], r"dt = -0\.1 must be > 0"),
    (FLAGS + ["--param", "damping=nan"], r"damping = nan is not finite"),
    (FLAGS + ["--param", "damping=-1"], r"damping = -1\.0 is out of range; it must be >= 0"),
    (FLAGS + ["--param", "natural_frequency=uniform:0,1"], r"natural_frequency = .* it must be > 0"),
    (FLAGS + ["--param", "damp=0.1"], r"unknown key in \[params\] of an oscillator ensemble: damp"),
    (FLAGS + ["--param", "damping"], r"--param 'damping' is not NAME=SPEC"),
    (FLAGS + ["--t-end", "2.05"], r"t_end = 2\.05 is not a whole number of steps"),
    (FLAGS + ["--n-traj", "0"], r"n_traj must be >= 1, got 0"),
    (FLAGS + ["--param", "x0=values:0.1,0.2"], r"x0\.values has 2 entries but n_traj = 5"),
    (["simulate", "--system", "pendulm"], r"invalid choice: 'pendulm'"),
    (["simulate", "--n-traj", "many"], r"argument --n-traj: invalid int value: 'many'"),
    (["simulate", "--dt", "0.1"], r"has no 'system'"),
    (FLAGS, r"no output file; give --output PATH"),
    (["simulate", "--config", "/nonexistent/x.toml"], r"config file '/nonexistent/x\.toml' does not exist"),
    (["simulate", "--system", "eigen", "--n-traj", "2", "--dt", "0.1", "--n-steps", "3",
      "--param", "matrix=values:1,2"], r"unknown spec|matrix must be"),
    # Finite parameters whose solution overflows: refused, naming the culprit first, before a file exists.
    (FLAGS + ["--param", "natural_frequency=1e200"], r"not finite for trajectory 0 .* with natural_frequency = 1e\+200,"),
    (FLAGS + ["--param", "damping=1e308"], r"not finite for trajectory \d .* with damping = 1e\+308,"),
    # Sizes beyond this machine's memory: one line giving the size, not a NumPy allocation traceback.
    (FLAGS + ["--n-steps", "21"], r"give --n-steps or --t-end, not both"),
    ([f for f in FLAGS if f not in ("--t-end", "2")] + ["--n-steps", "10000000000"], r"the ensemble \(5 trajectories of 1e\+10 times\) needs about 880 GB of "
                                           r"memory, more than this machine's"),
    (FLAGS + ["--n-traj", "10000000000"], r"the ensemble \(10000000000 trajectories of 21 times, dt = 0\.1 up to "
                                          r"t_end = 2\) needs about 1\.28 TB of memory"),
    (FLAGS + ["--dt", "1e-300"], r"the ensemble \(5 trajectories of 2e\+300 times, dt = 1e-300 up to t_end = 2\) "
                                 r"needs about .* EB of memory"),
]


def run_cli(argv, capsys):
    """Exit status and stderr of `physrnn ARGV`, whether argparse or our own code rejects the input."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,match", BAD)
def test_bad_input_one_line_exit_2_no_file(tmp_path, capsys, argv, match):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if argv is not FLAGS:  # FLAGS alone checks the missing --output
        argv = argv + ["-o", str(out_dir / "out.h5")]
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    assert list(out_dir.iterdir()) == []  # neither the file nor a temporary


@pytest.mark.parametrize("body,match", [
    ('system = "oscillator"\nn_traj = 2\ndt = 0.1\nn_steps = 3\nspeed = 9\n', r"unknown key in the ensemble "
                                                                            r"config: speed"),
    ('system = "oscillator"\nn_traj = 2\ndt = "0.1"\nn_steps = 3\n', r"dt must be a number, got '0\.1'"),
    ('system = "eigen"\nn_traj = 2\ndt = 0.1\nn_steps = 3\n[params]\nmatrix = [[1.0, 2.0], [0.0, 1.0]]\n',
     r"matrix is not symmetric"),
    ('system = "oscillator"\nn_traj = \n', r"is not valid TOML"),
])
def test_bad_config_files(tmp_path, capsys, body, match):
    (tmp_path / "cfg").mkdir()
    code, err = run_cli(_bad_toml(tmp_path / "cfg", body) + ["-o", str(tmp_path / "out.h5")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(match, err), err
    assert not (tmp_path / "out.h5").exists()


def _truncated(path):
    main(FLAGS + ["-o", str(path)])
    path.write_bytes(path.read_bytes()[:3000])


def _foreign(path):
    import h5py

    with h5py.File(path, "w") as f:
        f["temperature"] = [1.0, 2.0]


def _one_nan(path):
    import h5py

    main(FLAGS + ["-o", str(path)])
    with h5py.File(path, "r+") as f:
        f["states"][3, 7, 1] = np.nan


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b"not hdf5 at all"), r"is not a readable HDF5 file"),
    (lambda p: None, r"no such trajectory file"),
    (_truncated, r"is truncated"),
    (_foreign, r"is not a physrnn trajectory file"),
    # The audit: inspect called a file valid with one state value set to NaN.
    (_one_nan, r"holds non-finite values \(states: 1 of 5 trajectories hold NaN or inf, the first \(trajectory 3\) "
               r"from t = 0\.7\)"),
])
def test_inspect_bad_files(tmp_path, capsys, make, match):
    path = tmp_path / "f.h5"
    make(path)
    capsys.readouterr()
    code, err = run_cli(["inspect", str(path)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(match, err), err


def test_console_script_exit_status_and_no_traceback(tmp_path):
    # Through a real process: the installed entry point, its exit status, and stderr free of a traceback.
    out = tmp_path / "sub" / "out.h5"
    proc = subprocess.run([sys.executable, "-m", "physrnn.cli"] + FLAGS + ["-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"physrnn simulate: error: cannot write '{out}': directory '{out.parent}' "
                                   "does not exist; create it first")
    assert "Traceback" not in proc.stderr


def test_help_documents_specs():
    proc = subprocess.run([sys.executable, "-m", "physrnn.cli", "simulate", "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "uniform:LO,HI" in proc.stdout and "--param NAME=SPEC" in proc.stdout


# ------------------------------------------------------------------ train and rollout
@pytest.fixture(scope="module")
def training_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "train.h5"
    assert main(["simulate", "--system", "oscillator", "--n-traj", "10", "--dt", "0.05", "--t-end", "5",
                 "--seed", "1", "--param", "damping=0.2", "--param", "drive_amplitude=0.5",
                 "--param", "drive_frequency=1.3", "--quiet", "-o", str(path)]) == 0
    return path


def test_train_then_rollout_the_held_out_trajectories(tmp_path, training_file, capsys):
    model = tmp_path / "lin.keras"
    assert main(["train", "--data", str(training_file), "--model", "linear", "--quiet", "-o", str(model)]) == 0
    out = tmp_path / "roll.h5"
    assert main(["rollout", "--model", str(model), "--data", str(training_file), "-o", str(out)]) == 0
    assert "(test)" in capsys.readouterr().out
    rolled, truth = read_trajectories(out), read_trajectories(training_file)
    assert rolled.method == "rollout:linear"
    index = rolled.params["source_trajectory"]
    model_meta = __import__("physrnn.models", fromlist=["load_model"]).load_model(model).provenance_
    assert index.tolist() == model_meta["split"]["test"] and len(index) == 1  # floor(15% of 10), unseen in training
    assert not set(index) & set(model_meta["split"]["train"])
    # The linear flow map is exact here (see test_models); the rollout file carries the same truth layout.
    np.testing.assert_allclose(rolled.states, truth.states[index], rtol=0, atol=1e-10)
    assert not rolled.params["diverged"].any()


BAD_LEARNING = [
    (["train", "--model", "gru", "--set", "units=0"], r"units must be an integer >= 1, got 0"),
    (["train", "--model", "esn", "--set", "spectral_radius=-1"], r"spectral_radius must be a finite number > 0"),
    (["train", "--model", "gru", "--set", "window=500"], r"window = 500 .* does not fit trajectories of 101 steps"),
    (["train", "--model", "gru", "--set", "unitz=3"], r"unknown setting for a gru model: unitz"),
    (["train", "--model", "mlp"], r"invalid choice: 'mlp'"),
    (["train", "--model", "gru", "--observation", "position", "--parameters", "mass"],
     r"unknown parameter feature\(s\) mass"),
]


@pytest.mark.parametrize("argv,match", BAD_LEARNING)
def test_bad_training_input(tmp_path, training_file, capsys, argv, match):
    out = tmp_path / "m.keras"
    code, err = run_cli(argv + ["--data", str(training_file), "-o", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err
    assert list(tmp_path.iterdir()) == []


def test_rollout_of_the_wrong_system_and_a_bad_model_file(tmp_path, training_file, capsys):
    model = tmp_path / "lin.keras"
    main(["train", "--data", str(training_file), "--model", "linear", "--quiet", "-o", str(model)])
    eigen = tmp_path / "eigen.h5"
    main(["simulate", "--system", "eigen", "--n-traj", "2", "--dt", "0.05", "--n-steps", "20", "--quiet",
          "-o", str(eigen)])
    code, err = run_cli(["rollout", "--model", str(model), "--data", str(eigen), "-o", str(tmp_path / "r.h5")],
                        capsys)
    assert code == 2 and "data are of the eigen system but the model is for the oscillator system" in err
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    code, err = run_cli(["rollout", "--model", str(fake), "--data", str(training_file), "-o",
                         str(tmp_path / "r.h5")], capsys)
    assert code == 2 and "is not a physrnn model file" in err
    assert not (tmp_path / "r.h5").exists()


def test_hold_out_by_parameter(tmp_path, capsys):
    data = tmp_path / "family.h5"
    main(["simulate", "--system", "oscillator", "--n-traj", "12", "--dt", "0.1", "--t-end", "3", "--quiet",
          "--param", "damping=linspace:0.1,1.2", "-o", str(data)])
    model = tmp_path / "lin.keras"
    assert main(["train", "--data", str(data), "--model", "linear", "--parameters", "damping", "--quiet",
                 "--hold-out", "damping=0.5:0.75", "-o", str(model)]) == 0
    from physrnn.models import load_model

    split = load_model(model).provenance_["split"]
    damping = read_trajectories(data).params["damping"]
    assert all(0.5 <= damping[i] <= 0.75 for i in split["test"]) and len(split["test"]) == 3
    assert not any(0.5 <= damping[i] <= 0.75 for i in split["train"] + split["validation"])
    code, err = run_cli(["train", "--data", str(data), "--model", "linear", "--hold-out", "mass=1:2",
                         "-o", str(tmp_path / "x.keras")], capsys)
    assert code == 2 and "no parameter of" in err


def test_evaluate_scores_rollouts_against_their_truth(tmp_path, training_file, capsys):
    rows = {}
    for kind in ("linear", "euler"):
        model, out = tmp_path / f"{kind}.keras", tmp_path / f"{kind}.h5"
        main(["train", "--data", str(training_file), "--model", kind, "--quiet", "-o", str(model)])
        main(["rollout", "--model", str(model), "--data", str(training_file), "--quiet", "-o", str(out)])
        capsys.readouterr()
        assert main(["evaluate", "--json", str(out)]) == 0
        rows[kind] = json.loads(capsys.readouterr().out)[0]
    assert rows["linear"]["rmse"][0] < 1e-10 and rows["linear"]["valid_time_median"] == rows["linear"]["horizon"]
    # Euler's own error, recomputed from its rollout file and the truth, must be what evaluate reports.
    rolled, truth = read_trajectories(tmp_path / "euler.h5"), read_trajectories(training_file)
    idx, c = rolled.params["source_trajectory"], 1
    expected = np.sqrt(np.mean((rolled.states[:, c:, 0] - truth.states[idx][:, c:, 0]) ** 2, axis=1)).mean()
    assert rows["euler"]["rmse"][0] == pytest.approx(expected, rel=1e-12) and expected > 1e-3
    code, err = run_cli(["evaluate", str(training_file)], capsys)
    assert code == 2 and "holds exact trajectories, not a rollout" in err


def test_evaluate_finds_its_truth_from_anywhere_and_refuses_a_changed_one(tmp_path, monkeypatch, capsys):
    # The audit: a rollout stored its truth file as typed (relative), so evaluate failed from another directory,
    # and a regenerated truth file was scored silently (RMSE 1e-15 became 0.43) or raised an IndexError.
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(work)
    sim = ["simulate", "--system", "oscillator", "--n-traj", "8", "--dt", "0.05", "--t-end", "3", "--quiet",
           "--param", "damping=0.3", "-o", "truth.h5"]
    assert main(sim + ["--seed", "1"]) == 0
    assert main(["train", "--data", "truth.h5", "--model", "linear", "--quiet", "-o", "lin.keras"]) == 0
    assert main(["rollout", "--model", "lin.keras", "--data", "truth.h5", "--select", "all", "--quiet",
                 "-o", "roll.h5"]) == 0
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["evaluate", "--json", str(work / "roll.h5")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rmse"][0] < 1e-10  # the linear map is exact here
    monkeypatch.chdir(work)
    for regenerate in (["--seed", "2"], ["--seed", "1", "--n-traj", "3"]):  # other data; fewer trajectories
        assert main(sim + regenerate) == 0
        code, err = run_cli(["evaluate", "roll.h5"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"the truth file '{work / 'truth.h5'}' no longer holds the trajectories 'roll.h5' was rolled" in err


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    # The audit: SIGTERM (timeout, batch schedulers) during simulate left a hidden .NAME.PID.tmp of 70-100 MB.
    import signal
    import time

    out = tmp_path / "big.h5"
    proc = subprocess.Popen([sys.executable, "-m", "physrnn.cli", "simulate", "--system", "oscillator", "--n-traj",
                             "4000", "--dt", "0.01", "--n-steps", "20000", "--quiet", "-o", str(out)],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.h5.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be terminated; make it longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip() == "physrnn simulate: terminated (SIGTERM); no partial output was kept"
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_dead_processes_are_removed_on_the_next_run(tmp_path):
    # SIGKILL cannot be caught: the next run for the same output removes what a dead process left behind.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale, stale_model = tmp_path / f".osc.h5.{dead}.tmp", tmp_path / f".m.keras.{dead}.tmp.keras"
    running = tmp_path / f".osc.h5.{os.getppid()}.tmp"  # a process that still runs may still be writing
    other = tmp_path / f".other.h5.{dead}.tmp"  # another output's: not this run's business
    for path in (stale, stale_model, running, other):
        path.write_bytes(b"x" * 1000)
    assert main(FLAGS + ["-o", str(tmp_path / "osc.h5")]) == 0
    assert not stale.exists() and running.exists() and other.exists()
    assert main(["train", "--data", str(tmp_path / "osc.h5"), "--model", "euler", "--quiet", "--split", "0.6,0.2,0.2",
                 "-o", str(tmp_path / "m.keras")]) == 0
    assert not stale_model.exists()


def test_version_and_help_from_the_configs(capsys):
    from importlib.metadata import version

    from physrnn.models.configs import RecurrentConfig
    from simulators.integrate import REFERENCE_RTOL

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"physrnn {version('physrnn')}"
    simulate = subprocess.run([sys.executable, "-m", "physrnn.cli", "simulate", "--help"], capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "root seed of every random draw (default 0)" in simulate
    assert f"tolerance of the reference integrator (default {REFERENCE_RTOL:g})" in simulate
    study = subprocess.run([sys.executable, "-m", "physrnn.cli", "study", "--help"], capture_output=True,
                           text=True).stdout
    assert f"units [{RecurrentConfig().units}]  Hidden units per layer." in study  # each setting: default, meaning


def test_inspect_json_is_one_document_and_simulate_says_it_overwrites(tmp_path, capsys):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(FLAGS + ["-o", str(a)]) == 0 and main(FLAGS + ["-o", str(b)]) == 0
    capsys.readouterr()
    assert main(["inspect", "--json", str(a), str(b)]) == 0
    files = json.loads(capsys.readouterr().out)
    assert [f["path"] for f in files] == [str(a), str(b)] and files[0]["n_traj"] == 5
    assert main([f for f in FLAGS if f != "--quiet"] + ["-o", str(a)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {a}, replacing the file that was there"


def test_a_closed_pipe_is_silent(tmp_path):
    path = tmp_path / "a.h5"
    assert main(FLAGS + ["-o", str(path)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "physrnn.cli", "inspect"] + [str(path)] * 2000,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith(f"{path}: oscillator ensemble")
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == ""


def test_tensorflow_says_nothing_unless_asked(tmp_path, training_file):
    # The audit: every command importing TensorFlow printed 6-7 lines first, even before a config error.
    cli = [sys.executable, "-m", "physrnn.cli"]
    train = cli + ["train", "--data", str(training_file), "--model", "gru", "--set", "epochs=1", "--set", "units=4",
                   "--quiet", "-o", str(tmp_path / "g.keras")]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run(train, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    error = subprocess.run(cli + ["train", "--data", str(tmp_path / "none.h5"), "--model", "gru",
                                  "-o", str(tmp_path / "x.keras")], capture_output=True, text=True, env=env)
    assert error.returncode == 2 and error.stderr == f"physrnn train: error: no such trajectory file: " \
                                                     f"'{tmp_path / 'none.h5'}'\n"
    # --verbose hands TensorFlow its log back: whatever a bare import prints shows up again.
    bare = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env)
    verbose = subprocess.run(train + ["--verbose"], capture_output=True, text=True, env=env)
    assert verbose.returncode == 0
    assert all(line.split("]")[-1] in verbose.stderr for line in bare.stderr.splitlines())


def test_list_settings_are_given_in_brackets(tmp_path, capsys):
    data = tmp_path / "p.h5"
    assert main(["simulate", "--system", "pendulum", "--n-traj", "6", "--dt", "0.1", "--t-end", "10", "--seed", "1",
                 "--out", str(data)]) == 0
    out = tmp_path / "n.keras"
    assert main(["train", "--data", str(data), "--model", "nvar", "--set", "angles=[theta]", "--set",
                 "ridges=[1e-8, 1e-6]", "--out", str(out)]) == 0
    from physrnn.models import load_model

    model = load_model(out)
    assert model.config.angles == ("theta",) and model.config.ridges == (1e-8, 1e-6)
    assert model.history_["ridges"] == [1e-8, 1e-6]
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--model", "nvar", "--set", "angles=theta", "--out", str(out)]) == 2
    assert 'angles must be a list of component names such as ["theta"], got \'theta\'' in capsys.readouterr().err
