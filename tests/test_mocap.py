"""The motion-capture loader (pybullet_data humanoid clips)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pyro_gfa.data import mocap

HAVE_PYBULLET = importlib.util.find_spec("pybullet_data") is not None
needs_pybullet = pytest.mark.skipif(
    not HAVE_PYBULLET, reason="pybullet is not installed (pip install pybullet==3.2.7)"
)


def test_missing_package_error_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "pybullet_data" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ImportError, match=r"pip install pybullet==3\.2\.7"):
        mocap.load_mocap()
    with pytest.raises(ImportError, match="pybullet"):
        mocap.available_clips()


@needs_pybullet
def test_all_clips_and_joint_groups():
    d = mocap.load_mocap()
    assert len(d.clip_names) == 15 and "walk" in d.clip_names
    assert d.frames.dtype == np.float32 and d.frames.shape[1] == 40
    assert np.isfinite(d.frames).all()
    assert d.clip.shape == (d.frames.shape[0],)
    assert set(np.unique(d.clip)) == set(range(15))
    joints = d.groups("joints")
    assert len(joints) == 13 and "root_position" not in joints
    sizes = sorted({len(v) for v in joints.values()})
    assert sizes == [1, 4]
    for level, n in (("coarse", 3), ("limbs", 5)):
        g = d.groups(level)
        assert len(g) == n
        cols = np.sort(np.concatenate([np.asarray(v) for v in g.values()]))
        assert np.array_equal(cols, np.arange(40))  # a partition of the columns
    assert list(d.groups("coarse")) == ["core", "arms", "legs"]
    with pytest.raises(ValueError, match="level"):
        d.groups("fingers")


@needs_pybullet
def test_frames_match_the_json_and_quaternions_are_canonical():
    import json
    import os

    d = mocap.load_mocap(["walk"], include_root_position=True, canonical_quaternions=False)
    with open(os.path.join(mocap.motions_dir(), "humanoid3d_walk.txt")) as f:
        raw = np.asarray(json.load(f)["Frames"], dtype=np.float64)
    np.testing.assert_array_equal(d.frames, raw[:, 1:].astype(np.float32))
    np.testing.assert_array_equal(d.frame_duration, raw[:, 0])
    assert d.frames.shape[1] == 43 and len(d.joint_groups) == 14
    c = mocap.load_mocap(["walk", "run"])
    for name, cols in c.joint_groups.items():
        if len(cols) == 4:
            q = c.frames[:, cols]
            np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-3)
            assert (q[:, 0] >= 0).all(), name


@needs_pybullet
def test_select_and_unknown_clip():
    d = mocap.load_mocap()
    s = d.select(["run", "walk"])
    assert s.clip_names == ("run", "walk")
    assert (
        s.frames.shape[0]
        == (d.clip == d.clip_names.index("run")).sum()
        + (d.clip == d.clip_names.index("walk")).sum()
    )
    assert set(np.unique(s.clip)) == {0, 1}
    with pytest.raises(ValueError, match="unknown clip"):
        mocap.load_mocap(["moonwalk"])
    with pytest.raises(ValueError, match="clip 'walk' is named twice"):
        mocap.load_mocap(["walk", "walk"])
    with pytest.raises(ValueError, match="unknown clip"):
        d.select(["moonwalk"])
    for bad in ([-1], [len(d.clip_names)], [True]):
        with pytest.raises(ValueError, match="neither a clip name nor an index"):
            d.select(bad)
    with pytest.raises(ValueError, match="selected twice"):
        d.select(["run", d.clip_names.index("run")])


@needs_pybullet
def test_a_single_clip_name_and_an_empty_list():
    d = mocap.load_mocap("walk")
    assert d.clip_names == ("walk",)
    assert d.frames.shape[0] > 0 and set(np.unique(d.clip)) == {0}
    assert mocap.load_mocap(["walk", "run"]).select("run").clip_names == ("run",)
    with pytest.raises(ValueError, match="clips is empty: name at least one clip"):
        mocap.load_mocap([])
