"""Motion capture: the humanoid clips that ship with ``pybullet`` (``pybullet_data``).

The 15 ``humanoid3d_*.txt`` clips (walk, run, jump, kick, dance, cartwheel, ...) are JSON
files with ``Frames``: ``T x 44``, column 0 the frame duration and columns 1..43 the pose:
root position (3), root rotation (quaternion, 4), then chest, neck, right hip, right knee,
right ankle, right shoulder, right elbow, left hip, left knee, left ankle, left shoulder,
left elbow (quaternions of 4, knees and elbows a single angle). They are read from the
installed package folder; ``pybullet`` itself is never imported.

This is the nearest packaged stand-in for the CMU walking data of the oi-VAE and factVAE
papers: joints as groups, or limbs and core as groups.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PIP_COMMAND = "pip install pybullet==3.2.7"

#: joint name -> (first column, last column + 1) in a frame of 44 (column 0 is the duration)
JOINTS: dict[str, tuple[int, int]] = {
    "root_position": (1, 4),
    "root_rotation": (4, 8),
    "chest": (8, 12),
    "neck": (12, 16),
    "right_hip": (16, 20),
    "right_knee": (20, 21),
    "right_ankle": (21, 25),
    "right_shoulder": (25, 29),
    "right_elbow": (29, 30),
    "left_hip": (30, 34),
    "left_knee": (34, 35),
    "left_ankle": (35, 39),
    "left_shoulder": (39, 43),
    "left_elbow": (43, 44),
}

#: coarse groupings of the joints
GROUPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "coarse": {
        "core": ("root_position", "root_rotation", "chest", "neck"),
        "arms": ("right_shoulder", "right_elbow", "left_shoulder", "left_elbow"),
        "legs": (
            "right_hip",
            "right_knee",
            "right_ankle",
            "left_hip",
            "left_knee",
            "left_ankle",
        ),
    },
    "limbs": {
        "core": ("root_position", "root_rotation", "chest", "neck"),
        "right_arm": ("right_shoulder", "right_elbow"),
        "left_arm": ("left_shoulder", "left_elbow"),
        "right_leg": ("right_hip", "right_knee", "right_ankle"),
        "left_leg": ("left_hip", "left_knee", "left_ankle"),
    },
}

_QUATERNIONS = {n for n, (a, b) in JOINTS.items() if b - a == 4}


@dataclass(frozen=True)
class MocapData:
    """Frames of humanoid motion clips with their joint groups.

    Attributes
    ----------
    frames : ndarray, shape (T, D), float32
        Pose columns of every frame of every clip (clips stacked in order).
    columns : tuple of str
        Name of every column (``"chest.w"``, ``"right_knee"``, ...).
    joint_groups : dict
        Joint name -> column indices (13 or 14 joints of 1 to 4 columns).
    clip : ndarray, shape (T,), int
        Index into ``clip_names`` of every frame.
    clip_names : tuple of str
        Clip names (``"walk"``, ``"run"``, ...).
    frame_duration : ndarray, shape (T,)
        Seconds per frame.
    """

    frames: np.ndarray
    columns: tuple[str, ...]
    joint_groups: dict[str, list[int]]
    clip: np.ndarray
    clip_names: tuple[str, ...]
    frame_duration: np.ndarray

    def groups(self, level: str = "joints") -> dict[str, list[int]]:
        """Column groups: ``"joints"`` (one per joint), ``"coarse"`` (core / arms / legs) or
        ``"limbs"`` (core, right/left arm, right/left leg, as in the factVAE paper)."""
        if level == "joints":
            return {k: list(v) for k, v in self.joint_groups.items()}
        if level not in GROUPINGS:
            raise ValueError(f"level must be 'joints', 'coarse' or 'limbs', got {level!r}")
        out = {}
        for name, joints in GROUPINGS[level].items():
            cols = [c for j in joints if j in self.joint_groups for c in self.joint_groups[j]]
            if cols:
                out[name] = cols
        return out

    def select(self, clips) -> MocapData:
        """The frames of the named clips (or clip indices), in the order given; a single
        name or index selects one clip."""
        n = len(self.clip_names)
        if isinstance(clips, (str, int, np.integer)):
            clips = [clips]
        ids = []
        for c in clips:
            if isinstance(c, str):
                if c not in self.clip_names:
                    raise ValueError(f"unknown clip {c!r}; clips are {list(self.clip_names)}")
                i = self.clip_names.index(c)
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < n:
                i = int(c)
            else:
                raise ValueError(f"clip {c!r} is neither a clip name nor an index in 0..{n - 1}")
            if i in ids:
                raise ValueError(f"clip {c!r} is selected twice")
            ids.append(i)
        if not ids:
            raise ValueError("select needs at least one clip")
        rows = np.concatenate([np.flatnonzero(self.clip == i) for i in ids])
        names = tuple(self.clip_names[i] for i in ids)
        remap = {old: new for new, old in enumerate(ids)}
        return MocapData(
            frames=self.frames[rows],
            columns=self.columns,
            joint_groups={k: list(v) for k, v in self.joint_groups.items()},
            clip=np.array([remap[c] for c in self.clip[rows]], dtype=np.int64),
            clip_names=names,
            frame_duration=self.frame_duration[rows],
        )


def motions_dir() -> str:
    """Folder of the humanoid clips in the installed ``pybullet_data``.

    Raises
    ------
    ImportError
        When ``pybullet`` (which ships ``pybullet_data``) is not installed; the message
        names the pip command.
    """
    spec = importlib.util.find_spec("pybullet_data")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the motion-capture clips ship with the pybullet package, which is not installed;"
            f" install it with `{PIP_COMMAND}` (or `pip install 'pyro-gfa[data]'`)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "motions")
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"pybullet_data has no motions folder ({path}); reinstall with `{PIP_COMMAND}`"
        )
    return path


def available_clips() -> tuple[str, ...]:
    """Names of the humanoid clips (``"backflip"``, ..., ``"walk"``), sorted."""
    files = sorted(os.listdir(motions_dir()))
    return tuple(
        f[len("humanoid3d_") : -len(".txt")]
        for f in files
        if f.startswith("humanoid3d_") and f.endswith(".txt")
    )


def load_mocap(
    clips: str | Sequence[str] | None = None,
    include_root_position: bool = False,
    canonical_quaternions: bool = True,
) -> MocapData:
    """Load the humanoid motion-capture clips of ``pybullet_data``.

    Parameters
    ----------
    clips
        Clip names (e.g. ``["walk", "run"]``, or ``"walk"`` for one clip); ``None``: all
        15, sorted by name.
    include_root_position
        Keep the root's 3-d position (a global translation that drifts through a clip;
        left out by default, so the frames describe the pose).
    canonical_quaternions
        Flip the sign of every quaternion whose first (``w``) component is negative
        (``q`` and ``-q`` are the same rotation), so the data have no sign jumps.

    Returns
    -------
    MocapData
        Frames ``(T, 40)`` (``43`` with the root position), joint groups, clip ids.

    Raises
    ------
    ImportError
        If ``pybullet`` is not installed (the message names ``pip install pybullet==3.2.7``).
    ValueError
        If a clip name is unknown or repeated, or ``clips`` is empty.
    """
    folder = motions_dir()
    known = available_clips()
    # a single name is one clip, not a sequence of one-letter clips
    names = known if clips is None else (clips,) if isinstance(clips, str) else tuple(clips)
    if not names:
        raise ValueError(f"clips is empty: name at least one clip of {list(known)}, or None")
    for i, c in enumerate(names):
        if c not in known:
            raise ValueError(f"unknown clip {c!r}; available: {list(known)}")
        if c in names[:i]:
            raise ValueError(f"clip {c!r} is named twice")
    joints = [j for j in JOINTS if include_root_position or j != "root_position"]
    frames, clip, dur = [], [], []
    for i, name in enumerate(names):
        with open(os.path.join(folder, f"humanoid3d_{name}.txt")) as f:
            a = np.asarray(json.load(f)["Frames"], dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 44:
            raise ValueError(f"clip {name!r} has frames of shape {a.shape}, expected (T, 44)")
        parts = []
        for j in joints:
            lo, hi = JOINTS[j]
            block = a[:, lo:hi].copy()
            if canonical_quaternions and j in _QUATERNIONS:
                block *= np.where(block[:, :1] < 0, -1.0, 1.0)
            parts.append(block)
        frames.append(np.concatenate(parts, axis=1))
        clip.append(np.full(a.shape[0], i, dtype=np.int64))
        dur.append(a[:, 0])
    columns: list[str] = []
    groups: dict[str, list[int]] = {}
    for j in joints:
        lo, hi = JOINTS[j]
        if hi - lo == 1:
            names_j = [j]
        elif j == "root_position":
            names_j = [f"{j}.{c}" for c in "xyz"]
        else:
            names_j = [f"{j}.{c}" for c in "wxyz"]
        groups[j] = list(range(len(columns), len(columns) + len(names_j)))
        columns.extend(names_j)
    return MocapData(
        frames=np.concatenate(frames).astype(np.float32),
        columns=tuple(columns),
        joint_groups=groups,
        clip=np.concatenate(clip),
        clip_names=tuple(names),
        frame_duration=np.concatenate(dur),
    )
