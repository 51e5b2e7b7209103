import numpy as np
import pytest

from pyro_gfa.data import Groups


def test_sizes_index_lists_and_mapping():
    g = Groups.from_spec([2, 1, 3])
    assert g.n_features == 6 and g.n_groups == 3
    np.testing.assert_array_equal(g.feature_group, [0, 0, 1, 2, 2, 2])
    g = Groups.from_spec([[3, 0], [1, 2]])
    np.testing.assert_array_equal(g.feature_group, [0, 1, 1, 0])
    g = Groups.from_spec({"arm": ["a", "b"], "leg": ["c"]}, columns=["a", "c", "b"])
    assert g.names == ("arm", "leg")
    np.testing.assert_array_equal(g.feature_group, [0, 1, 0])


@pytest.mark.parametrize(
    "spec, n, match",
    [
        ([[0, 1], [1, 2]], 3, "more than one group"),
        ([[0], [2]], 3, "do not cover"),
        ([[0, 5]], 3, "outside"),
        ([[0], []], 1, "empty"),
        ([2, 0], None, "positive"),
        ({"a": ["zz"]}, 1, "unknown column"),
        ([3], 4, "do not cover"),
    ],
)
def test_bad_specs(spec, n, match):
    with pytest.raises(ValueError, match=match):
        Groups.from_spec(spec, n)


def test_a_hand_built_groups_is_checked_like_a_parsed_one():
    with pytest.raises(ValueError, match="more than one group"):
        Groups(index=(np.array([0, 0]), np.array([1])), names=("a", "b"), n_features=2)
    with pytest.raises(ValueError, match="in no group"):
        Groups(index=(np.array([0]), np.array([1])), names=("a", "b"), n_features=3)
    with pytest.raises(ValueError, match="outside"):
        Groups(index=(np.array([0]), np.array([5])), names=("a", "b"), n_features=2)
    with pytest.raises(ValueError, match="names"):
        Groups(index=(np.array([0]), np.array([1])), names=("a",), n_features=2)
    with pytest.raises(ValueError, match="not a column"):
        Groups.from_spec([[True, 2], [0]])
    with pytest.raises(ValueError, match="empty"):
        Groups.from_spec({})
    g = Groups(index=([1], [0]), names=("a", "b"), n_features=2)  # lists become arrays
    np.testing.assert_array_equal(g.feature_group, [1, 0])


def test_repr_gives_sizes_not_column_indices():
    g = Groups.from_spec(list(range(1, 11)), n_features=55)
    text = repr(g)
    assert text.startswith("Groups(n_groups=10, n_features=55, sizes={'group0': 1, 'group1': 2,")
    assert text.endswith("'group7': 8, ...})")
