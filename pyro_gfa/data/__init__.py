"""Group specifications, synthetic data of the papers, and loaders of real data."""

from .bars import bar_groups, make_bars
from .groups import Groups

__all__ = ["Groups", "bar_groups", "make_bars"]
