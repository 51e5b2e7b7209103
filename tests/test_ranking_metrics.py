"""Recall@k and NDCG@k of Liang et al. (2018) against hand-computed values."""

import itertools
import math

import numpy as np
import pytest
import torch

from pyro_gfa.metrics import ndcg_at_k, recall_at_k

L2 = 1.0 / math.log2(3)  # discount of rank 2
L3 = 1.0 / math.log2(4)  # discount of rank 3 (0.5)
L4 = 1.0 / math.log2(5)

# user 0: ranking 0 > 2 > 3 > 1 > 4, held out {1, 2}
# user 1: ranking 4 > 3 > 2 > 1 > 0, held out {0}
# user 2: ranking 1 > 0 > 2 > 3 > 4, held out {1, 2, 3}
SCORES = np.array(
    [
        [0.9, 0.1, 0.5, 0.3, 0.0],
        [0.0, 1.0, 2.0, 3.0, 4.0],
        [0.8, 0.9, 0.7, 0.6, 0.5],
    ]
)
HELD = np.array(
    [
        [0, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
    ]
)


def test_recall_hand_values():
    # k = 2: user 0 top {0, 2} -> 1 hit / min(2, 2); user 1 top {4, 3} -> 0 / 1;
    # user 2 top {1, 0} -> 1 hit / min(2, 3) = 0.5
    np.testing.assert_allclose(recall_at_k(SCORES, HELD, 2), [0.5, 0.0, 0.5])
    # k = 3: user 0 top {0, 2, 3}: 1 / 2; user 1: 0 / 1; user 2 top {1, 0, 2}: 2 / 3
    np.testing.assert_allclose(recall_at_k(SCORES, HELD, 3), [0.5, 0.0, 2 / 3])
    # k = 5 (all items): every held-out item is found
    np.testing.assert_allclose(recall_at_k(SCORES, HELD, 5), [1.0, 1.0, 1.0])


def test_recall_denominator_is_min_k_and_heldout():
    # 3 held-out items, k = 1: a hit at rank 1 gives recall 1, not 1/3
    assert recall_at_k([[0.1, 0.9, 0.2, 0.3]], [[0, 1, 1, 1]], 1)[0] == pytest.approx(1.0)


def test_ndcg_hand_values():
    # k = 3
    # user 0: hit at rank 2 -> L2; ideal over min(3, 2) = 2 ranks -> 1 + L2
    # user 1: no hit in top 3 -> 0
    # user 2: hits at ranks 1 and 3 -> 1 + L3; ideal over 3 ranks -> 1 + L2 + L3
    expect = [L2 / (1 + L2), 0.0, (1 + L3) / (1 + L2 + L3)]
    np.testing.assert_allclose(ndcg_at_k(SCORES, HELD, 3), expect)
    # k = 5: user 1's single held-out item is ranked last (rank 5)
    np.testing.assert_allclose(ndcg_at_k(SCORES, HELD, 5)[1], 1.0 / math.log2(6))


def test_perfect_ranking_scores_one():
    held = np.array([[1, 0, 1, 0, 1, 0]])
    scores = held + 0.01 * np.arange(6)
    assert ndcg_at_k(scores, held, 2)[0] == pytest.approx(1.0)
    assert ndcg_at_k(scores, held, 6)[0] == pytest.approx(1.0)
    assert recall_at_k(scores, held, 3)[0] == pytest.approx(1.0)


def test_exclude_removes_fold_in_items_from_ranking():
    scores = np.array([[0.9, 0.8, 0.1, 0.7]])
    held = np.array([[0, 0, 0, 1]])
    fold = np.array([[1, 1, 0, 0]])
    # without exclusion the held-out item is ranked 3rd; the fold-in items 0, 1 go first
    assert recall_at_k(scores, held, 1)[0] == 0.0
    assert ndcg_at_k(scores, held, 3)[0] == pytest.approx(L3)
    # excluded, it is ranked first
    assert recall_at_k(scores, held, 1, exclude=fold)[0] == 1.0
    assert ndcg_at_k(scores, held, 3, exclude=fold)[0] == pytest.approx(1.0)


def test_constant_scores_give_the_random_ranking_expectation():
    # every order of 4 tied items equally likely: a single held-out item is in the top 1
    # with probability 1/4, and at each rank with probability 1/4
    scores = np.zeros((1, 4))
    for j in range(4):
        held = np.eye(4)[[j]]
        assert recall_at_k(scores, held, 1)[0] == pytest.approx(0.25)
        assert ndcg_at_k(scores, held, 2)[0] == pytest.approx((1 + L2) / 4)


def test_ties_match_the_average_over_all_orders():
    rng = np.random.default_rng(1)
    n = 5
    for _ in range(8):
        s = rng.integers(0, 3, size=(1, n)).astype(float)  # many ties
        h = (rng.random((1, n)) < 0.4).astype(int)
        h[0, rng.integers(n)] = 1
        ex = (rng.random((1, n)) < 0.3) & (h == 0)
        for k in (1, 3):
            # every order of the tied items: break the ties by each permutation of the items
            broken = [s + 1e-3 * np.array(p)[None, :] for p in itertools.permutations(range(n))]
            rec = [recall_at_k(b, h, k, exclude=ex)[0] for b in broken]
            nd = [ndcg_at_k(b, h, k, exclude=ex)[0] for b in broken]
            assert recall_at_k(s, h, k, exclude=ex)[0] == pytest.approx(np.mean(rec))
            assert ndcg_at_k(s, h, k, exclude=ex)[0] == pytest.approx(np.mean(nd))


def test_excluded_items_rank_after_minus_infinity_scores():
    # item 3 scores -inf (a probability of 0 on the log scale) but is still ranked before
    # the excluded item 0
    s = [[-np.inf, 5.0, 4.0, -np.inf]]
    held = [[0, 0, 0, 1]]
    assert recall_at_k(s, held, 3, exclude=[[1, 0, 0, 0]])[0] == 1.0


def test_user_without_heldout_items_is_nan():
    r = recall_at_k([[0.1, 0.2], [0.3, 0.4]], [[0, 0], [0, 1]], 1)
    assert math.isnan(r[0]) and r[1] == 1.0
    n = ndcg_at_k([[0.1, 0.2], [0.3, 0.4]], [[0, 0], [1, 0]], 2)
    assert math.isnan(n[0]) and n[1] == pytest.approx(L2)


def test_torch_and_bool_inputs():
    s = torch.tensor(SCORES, requires_grad=True)
    h = torch.tensor(HELD, dtype=torch.bool)
    np.testing.assert_allclose(recall_at_k(s, h, 2), recall_at_k(SCORES, HELD, 2))
    np.testing.assert_allclose(ndcg_at_k(s, h, 4), ndcg_at_k(SCORES, HELD, 4))


def test_rank_invariant_to_monotone_transform():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20, 30))
    h = rng.random((20, 30)) < 0.2
    h[:, 0] = True
    np.testing.assert_allclose(recall_at_k(s, h, 5), recall_at_k(np.exp(s), h, 5))
    np.testing.assert_allclose(ndcg_at_k(s, h, 10), ndcg_at_k(np.exp(3 * s), h, 10))
    assert np.all((ndcg_at_k(s, h, 10) >= 0) & (ndcg_at_k(s, h, 10) <= 1))


@pytest.mark.parametrize("fn", [recall_at_k, ndcg_at_k])
def test_errors(fn):
    s = np.zeros((2, 3))
    h = np.array([[1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="2-D"):
        fn(np.zeros(3), np.zeros(3), 1)
    with pytest.raises(ValueError, match="shape"):
        fn(s, np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match="exclude must have the shape"):
        fn(s, h, 1, exclude=np.zeros((3, 3)))
    for bad_k in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive integer"):
            fn(s, h, bad_k)
    with pytest.raises(ValueError, match="larger than the number of items"):
        fn(s, h, 4)
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((2, 3), np.nan), h, 1)
    with pytest.raises(ValueError, match="binary"):
        fn(s, h * 2, 1)
    with pytest.raises(ValueError, match="binary"):
        fn(s, h, 1, exclude=h * 0.5)
    with pytest.raises(ValueError, match="both held out and excluded"):
        fn(s, h, 1, exclude=h)
