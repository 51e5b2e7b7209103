"""Group specifications, synthetic data of the papers, and loaders of real data."""

from .bars import bar_groups, make_bars
from .groups import Groups
from .mocap import MocapData, load_mocap
from .quadrants import make_quadrant_bars, quadrant_groups
from .real import load_movielens, load_news, load_reuters, load_zeisel

__all__ = ["Groups", "bar_groups", "make_bars"]
__all__ += ["make_quadrant_bars", "quadrant_groups"]
__all__ += ["MocapData", "load_mocap"]
__all__ += ["load_movielens", "load_news", "load_reuters", "load_zeisel"]
