"""The cache's seals, entry by entry: each way an entry can be unsound is named, and an unsound entry is removed."""

import json
import re

import h5py
import pytest

from physrnn.cache import entry_kind, problem, store, usable
from simulators.trajectory_file import file_sha256


def _h5(system="oscillator", method="exact"):
    def write(path):
        with h5py.File(path, "w") as f:
            f.attrs["system"], f.attrs["method"] = system, method
            f["x"] = [1.0, 2.0]
    return write


def _reseal(path, kind):
    """Seal whatever ``path`` now holds as a sound ``kind`` (what a careless copy would do)."""
    seal = path.with_name(path.name + ".sha256")
    seal.write_text(json.dumps({**json.loads(seal.read_text()), "sha256": file_sha256(path), "kind": kind}))


def test_a_sealed_entry_is_sound_and_says_what_it_holds(tmp_path):
    path = store(tmp_path / "a.h5", "oscillator", _h5())
    assert problem(path, "oscillator") is None
    assert entry_kind(path) == "oscillator"
    assert entry_kind(store(tmp_path / "r.h5", "rollout:gru", _h5(method="rollout:gru"))) == "rollout:gru"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "a.h5.sha256", "r.h5", "r.h5.sha256"]


@pytest.mark.parametrize("spoil, why", [
    (lambda p: p.with_name(p.name + ".sha256").unlink(), r"^has no checksum \(written by an older physrnn"),
    (lambda p: p.write_bytes(p.read_bytes()[:-1] + b"!"), r"^does not match its checksum \(altered or corrupt"),
    (lambda p: (p.write_bytes(b"not hdf5"), _reseal(p, "oscillator")), r"^cannot be read$"),
    (lambda p: (_h5(system="pendulum")(p), _reseal(p, "oscillator")), r"^holds a pendulum where a oscillator belongs$"),
    (lambda p: _reseal(p, "pendulum"), r"^is sealed as a pendulum where a oscillator belongs$"),
], ids=["no-seal", "altered", "unreadable", "other-kind", "seal-of-other-kind"])
def test_each_unsound_entry_is_named_and_removed(tmp_path, spoil, why):
    path = store(tmp_path / "a.h5", "oscillator", _h5())
    spoil(path)
    assert problem(path, "oscillator") is not None
    assert re.search(why, problem(path, "oscillator")), problem(path, "oscillator")
    said = []
    assert not usable(path, "oscillator", "simulate train", said.append)
    assert len(said) == 1 and said[0].startswith("simulate train: the cached a.h5 ") and said[0].endswith("rebuilding it")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(path):
        _h5()(path)
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        store(tmp_path / "a.h5", "oscillator", fail)
    assert list(tmp_path.iterdir()) == []
