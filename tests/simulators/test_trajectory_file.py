"""Trajectory files: bit-exact round trip, layout, atomic writes, and clear errors for bad files."""

import json
import os
from dataclasses import replace

import h5py
import numpy as np
import pytest

from simulators.trajectory_file import (SCHEMA, SCHEMA_VERSION, TrajectoryFileError, TrajectoryWriter,
                                        read_trajectories, write_trajectories)


@pytest.fixture(params=["driven", "eigen"])
def ensemble(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def written(tmp_path, driven):
    return write_trajectories(tmp_path / "driven.h5", driven)


def test_round_trip_is_bit_exact(tmp_path, ensemble):
    back = read_trajectories(write_trajectories(tmp_path / "ens.h5", ensemble))
    np.testing.assert_array_equal(back.time, ensemble.time)
    np.testing.assert_array_equal(back.states, ensemble.states)
    if ensemble.drive is None:
        assert back.drive is None
    else:
        np.testing.assert_array_equal(back.drive, ensemble.drive)
    assert back.params.keys() == ensemble.params.keys()
    for name in ensemble.params:
        np.testing.assert_array_equal(back.params[name], ensemble.params[name])
        assert back.params[name].dtype == ensemble.params[name].dtype
    for field in ("system", "method", "state_names", "state_units", "drive_names"):
        assert getattr(back, field) == getattr(ensemble, field)
    assert back.attrs["config"] == ensemble.attrs["config"]
    assert back.attrs["seed"] == ensemble.attrs["seed"]
    assert back.dt == pytest.approx(ensemble.dt, rel=1e-15)


def test_layout_is_self_describing(written, driven):
    with h5py.File(written) as f:
        assert f.attrs["schema"] == SCHEMA and f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["system"] == "oscillator" and f.attrs["method"] == "exact"
        assert f.attrs["dt"] == pytest.approx(0.05)
        assert json.loads(f.attrs["config"])["seed"] == 7
        assert {"numpy", "scipy", "h5py", "python", "physrnn"} <= json.loads(f.attrs["software"]).keys()
        states = f["states"]
        assert states.shape == driven.states.shape and states.dtype == np.float64
        assert states.chunks is not None and states.compression == "gzip" and states.shuffle
        assert [d.label for d in states.dims] == ["trajectory", "time", "component"]
        np.testing.assert_array_equal(states.dims[1][0][()], driven.time)  # the time scale is attached
        assert list(states.dims[2][0].asstr()[()]) == ["x", "v"]
        assert list(states.attrs["units"]) == ["L", "L/T"]
        assert [d.label for d in f["drive"].dims] == ["trajectory", "time", "drive_component"]
        assert f["params/damping"].dims[0].label == "trajectory"
        assert set(f["params"]) == {"damping", "natural_frequency", "drive_amplitude", "drive_frequency",
                                    "drive_phase", "x0", "v0"}


@pytest.mark.parametrize("name", ["driven", "eigen"])
def test_netcdf_tools_and_xarray_read_the_whole_file(tmp_path, name, request):
    # The audit: netCDF4.Dataset and ncdump failed on every file and xarray could not open /params ("mixing of
    # labeled and unlabeled dimensions" on drive_amplitude and matrix). Every axis of every dataset is named now.
    import netCDF4
    import xarray as xr

    ens = request.getfixturevalue(name)
    path = write_trajectories(tmp_path / "ens.h5", ens)
    tree = xr.open_datatree(path, engine="h5netcdf")
    root, params = tree.to_dataset(), tree["params"].to_dataset()
    assert root.states.dims == ("trajectory", "time", "component")
    assert list(root.component.values) == list(ens.state_names)  # names as strings, not bytes
    np.testing.assert_array_equal(root.time.values, ens.time)
    np.testing.assert_array_equal(root.states.values, ens.states)
    assert set(params.data_vars) == set(ens.params)
    for key, value in ens.params.items():
        np.testing.assert_array_equal(params[key].values, value)
        assert params[key].dims[0] == "trajectory" and len(params[key].dims) == value.ndim
    if name == "driven":
        assert params.drive_amplitude.dims == ("trajectory", "term") and root.drive.dims[-1] == "drive_component"
        np.testing.assert_array_equal(root.drive.values, ens.drive)
    else:
        assert params.matrix.dims == ("trajectory", "row", "column") and params.x0.dims == ("trajectory", "component")
    with netCDF4.Dataset(path) as nc:  # the netCDF-C library, as ncdump uses it
        assert nc["states"].dimensions == ("trajectory", "time", "component")
        np.testing.assert_array_equal(nc["states"][:], ens.states)
        assert set(nc["params"].variables) == set(ens.params)


def test_failed_write_leaves_no_file(tmp_path, driven):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="disk on fire"):
        with TrajectoryWriter(target, system="oscillator", time=driven.time, n_traj=driven.n_traj,
                              state_names=("x", "v"), state_units=("L", "L/T"), method="exact") as w:
            w.write(slice(0, 2), driven.states[:2])
            raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path, driven, written):
    before = written.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with TrajectoryWriter(written, system="oscillator", time=driven.time, n_traj=1, state_names=("x", "v"),
                              state_units=("L", "L/T"), method="exact"):
            raise KeyboardInterrupt
    assert written.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [written.name]


@pytest.mark.parametrize("part", ["states", "drive", "params"])
def test_writer_refuses_non_finite_values(tmp_path, driven, part):
    states, drive = driven.states.copy(), driven.drive.copy()
    params = {k: v.copy() for k, v in driven.params.items()}
    {"states": states, "drive": drive, "params": params["natural_frequency"]}[part].flat[5] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf"):
        with TrajectoryWriter(tmp_path / "x.h5", system="oscillator", time=driven.time, n_traj=driven.n_traj,
                              state_names=("x", "v"), state_units=("L", "L/T"), method="exact",
                              drive_names=("force",)) as w:
            w.write_params(params)
            w.write(slice(None), states, drive)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_nan_after_a_flagged_divergence_is_the_one_exception(tmp_path, driven):
    # A rollout file flags divergence in /params/diverged_at: NaN from that step on is by design; before it, not.
    states = driven.states.copy()
    states[2, 50:] = np.nan
    params = {**driven.params, "diverged_at": np.where(np.arange(driven.n_traj) == 2, 50, -1)}
    back = read_trajectories(write_trajectories(tmp_path / "ok.h5", replace(driven, states=states, params=params)))
    assert np.isnan(back.states[2, 50:]).all() and np.isfinite(back.states[2, :50]).all()
    params["diverged_at"] = np.where(np.arange(driven.n_traj) == 2, 51, -1)  # one NaN step before the flag
    with pytest.raises(ValueError, match=r"states: 1 of 12 trajectories hold NaN or inf, the first \(trajectory 2\) "
                                         r"from t = 2\.5"):
        write_trajectories(tmp_path / "bad.h5", replace(driven, states=states, params=params))
    assert not (tmp_path / "bad.h5").exists()


def test_params_must_have_one_entry_per_trajectory(tmp_path, driven):
    with pytest.raises(ValueError, match=r"parameter 'damping' has shape \(3,\); its first dimension must be "
                                         r"n_traj = 12"):
        with TrajectoryWriter(tmp_path / "x.h5", system="oscillator", time=driven.time, n_traj=12,
                              state_names=("x", "v"), state_units=("L", "L/T"), method="exact") as w:
            w.write_params({"damping": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make_path,match",
    [
        (lambda d: d / "missing" / "out.h5", r"directory '.*missing' does not exist; create it first"),
        (lambda d: d, r"is a directory; give a file name"),
    ],
)
def test_unwritable_output_path(tmp_path, driven, make_path, match):
    with pytest.raises(ValueError, match=match):
        write_trajectories(make_path(tmp_path), driven)


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda p: p.with_name("nope.h5"), r"no such trajectory file: '.*nope\.h5'"),
        (lambda p: (p.write_text("x,v\n0.1,0.2\n"), p)[1], r"is not a readable HDF5 file"),
        (lambda p: (p.write_bytes(p.read_bytes()[: os.path.getsize(p) // 2]), p)[1],
         r"is truncated \(\d+ bytes; the write did not finish or the copy is incomplete\)"),
        (lambda p: _edit(p, lambda f: f.attrs.__delitem__("schema")),
         r"is not a physrnn trajectory file: it has no 'schema' attribute"),
        (lambda p: _edit(p, lambda f: f.attrs.__setitem__("schema", "netcdf.climate")),
         r"has schema 'netcdf.climate', not 'physrnn.trajectories'"),
        (lambda p: _edit(p, lambda f: f.attrs.__setitem__("schema_version", 0)),
         r"has schema_version 0, older than the version this physrnn reads \(1\); regenerate it"),
        (lambda p: _edit(p, lambda f: f.attrs.__setitem__("schema_version", 99)),
         r"has schema_version 99, newer than .* upgrade physrnn"),
        (lambda p: _edit(p, lambda f: f.__delitem__("states")), r"is incomplete: missing states"),
        (lambda p: _edit(p, lambda f: f.attrs.__setitem__("n_steps", 5)),
         r"/states has shape \(12, 201, 2\), expected \(12, 5, n_state\)"),
        (lambda p: _edit(p, lambda f: f["states"].__setitem__((4, 9, 0), np.inf)),
         r"non-finite values \(states: 1 of 12 trajectories hold NaN or inf, the first \(trajectory 4\) from "
         r"t = 0\.45\)"),
        (lambda p: _edit(p, lambda f: f["drive"].__setitem__((0, 0, 0), np.nan)),
         r"non-finite values \(drive: 1 of 12 trajectories"),
        (lambda p: _edit(p, lambda f: f["params/damping"].__setitem__(2, np.nan)),
         r"non-finite values \(params/damping: holds NaN or inf\)"),
        (lambda p: _edit(p, lambda f: (f["params"].__delitem__("damping"),
                                       f["params"].create_dataset("damping", data=np.zeros(3)))),
         r"/params/damping has shape \(3,\); its first dimension must be n_traj = 12"),
    ],
)
def test_bad_files_are_named_and_explained(written, corrupt, match):
    with pytest.raises(TrajectoryFileError, match=match):
        read_trajectories(corrupt(written))


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["temperature"] = np.arange(3.0)
    with pytest.raises(TrajectoryFileError, match=r"no 'schema' attribute \(top level holds: temperature\)"):
        read_trajectories(path)


def test_a_bad_time_grid_is_refused_on_writing_and_on_reading(tmp_path, driven, written):
    time = driven.time.copy()
    time[3] = np.nan
    with pytest.raises(ValueError, match=r"^the time grid holds NaN or inf; nothing was written$"):
        write_trajectories(tmp_path / "bad.h5", replace(driven, time=time))
    assert not (tmp_path / "bad.h5").exists()
    n = len(driven.time)
    with h5py.File(written, "r+") as f:  # a file whose /time lost its last sample
        data = f["time"][:-1]
        del f["time"]
        f["time"] = data
    with pytest.raises(TrajectoryFileError, match=rf"/time has shape \({n - 1},\), expected \({n},\)$"):
        read_trajectories(written)
