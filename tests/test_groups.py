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
        ({"a": ["zz"]}, 1, r"'zz' names a column.*gfa.io.groups_from\(df, spec\)"),
        ([3], 4, "group sizes add up to 3 but the data has 4 columns"),
        ([4, 4], 6, "group sizes add up to 8 but the data has 6 columns"),
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


def test_a_data_frame_is_not_a_group_specification():
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="got a DataFrame"):
        Groups.from_spec(pd.DataFrame(np.zeros((3, 2)), columns=["a", "b"]), 2, columns=["a", "b"])


def test_repr_gives_sizes_not_column_indices():
    g = Groups.from_spec(list(range(1, 11)), n_features=55)
    text = repr(g)
    assert text.startswith("Groups(n_groups=10, n_features=55, sizes={'group0': 1, 'group1': 2,")
    assert text.endswith("'group7': 8, ...})")


@pytest.mark.parametrize("n", ["6", 6.0, True])
def test_n_features_must_be_a_true_integer(n):
    with pytest.raises(ValueError, match=r"n_features must be an integer >= 1, got"):
        Groups.from_spec([3, 3], n_features=n)
    with pytest.raises(ValueError, match="n_features must be an integer"):
        Groups(index=([0, 1, 2], [3, 4, 5]), names=("a", "b"), n_features=n)


def test_n_features_is_stored_as_an_int():
    g = Groups.from_spec([3, 3], n_features=np.int64(6))
    assert type(g.n_features) is int and g.n_features == 6


@pytest.mark.parametrize(
    "spec, match",
    [
        ([True, True], r"group sizes must be positive ints, got \[True, True\]"),
        ([2.0, 2.0, 2.0], r"group sizes must be positive ints, got \[2.0, 2.0, 2.0\]"),
        ([2, [2, 3]], "mixes sizes and column lists"),
        ([[0.0, 1.0], [2.0]], r"unknown column 0.0 \(a column is an int index"),
        ([[[0, 1]], [[2]]], "expected a flat list of columns"),
    ],
)
def test_bad_group_sizes_and_lists_name_what_is_accepted(spec, match):
    with pytest.raises(ValueError, match=match):
        Groups.from_spec(spec)


@pytest.mark.parametrize("spec", [6, "abc", None])
def test_a_spec_of_the_wrong_kind_names_the_accepted_forms(spec):
    with pytest.raises(TypeError, match="list of group sizes .* mapping name -> columns"):
        Groups.from_spec(spec)


def test_a_method_passed_uncalled_gets_a_short_error_that_says_so():
    class Data:
        def groups(self):
            return {"a": [0]}

        def __repr__(self):
            return "Data(" + "x" * 10_000 + ")"

    with pytest.raises(TypeError, match="got method .*; call it to get the groups") as e:
        Groups.from_spec(Data().groups)
    assert len(str(e.value)) < 300


def test_a_hand_built_groups_refuses_float_indices():
    with pytest.raises(ValueError, match="must be a flat list of integers"):
        Groups(index=([0.5], [1]), names=("a", "b"), n_features=2)


def test_models_pass_n_features_through_the_check():
    import pyro_gfa as gfa

    with pytest.raises(ValueError, match="n_features must be an integer >= 1, got '6'"):
        gfa.OIVAE([3, 3], 2, n_features="6")


def test_bar_data_generators_check_their_integer_arguments():
    import pyro_gfa as gfa

    for size in (0, -1, 2.5):
        with pytest.raises(ValueError, match=r"size must be an integer >= 1, got"):
            gfa.data.bar_groups(size)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got 2.5 \(float\)"):
        gfa.data.make_bars(2.5)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got 'a' \(str\)"):
        gfa.data.make_bars(5, seed="a")
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got 2.5"):
        gfa.data.make_quadrant_bars(2.5)
    assert gfa.data.make_bars(np.int64(3), seed=None)[0].shape == (3, 64)


def test_a_column_index_equal_to_n_features_is_outside():
    # the last column is n_features - 1: an off-by-one would pass it on to feature_group
    with pytest.raises(ValueError, match=r"columns \[2\] outside 0..1"):
        Groups(index=(np.array([0]), np.array([1, 2])), names=("a", "b"), n_features=2)


def test_repr_of_exactly_eight_groups_is_complete():
    text = repr(Groups.from_spec([1] * 8))
    assert text.endswith("'group7': 1})")


def test_group_names_must_be_unique():
    with pytest.raises(ValueError, match="group names must be unique"):
        Groups(index=(np.array([0]), np.array([1])), names=("a", "a"), n_features=2)


@pytest.mark.parametrize("n", [3, 5])
def test_a_groups_object_must_cover_exactly_the_data_columns(n):
    g = Groups.from_spec([2, 2])
    assert Groups.from_spec(g, 4) is g
    with pytest.raises(ValueError, match=f"groups cover 4 columns but the data has {n}"):
        Groups.from_spec(g, n)
