import math

import numpy as np
import pytest
import torch

from pyro_gfa.metrics import (
    anchor_report,
    dci,
    dci_from_importance,
    factors_recovered,
    match_columns,
    mse,
    support_f1,
)

# --------------------------------------------------------------------------------- mse


def test_mse_hand_value():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 0.0], [4.0, 4.0]])
    assert mse(a, b) == pytest.approx((0 + 4 + 1 + 0) / 4)


def test_mse_accepts_torch_and_checks_shape():
    a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert mse(a, np.zeros(3)) == pytest.approx(14 / 3)
    with pytest.raises(ValueError):
        mse(np.zeros(3), np.zeros(4))


# --------------------------------------------------------------------------------- matching


def test_match_columns_corr_permutation_sign_and_extra_column():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((300, 2))
    noise = rng.standard_normal(300)
    # est columns: noise, -truth1, truth0 (+ a little noise)
    est = np.stack([noise, -truth[:, 1], truth[:, 0] + 0.1 * noise], axis=1)
    m = match_columns(est, truth)
    assert m.method == "corr"
    np.testing.assert_array_equal(m.est_index, [2, 1])
    np.testing.assert_array_equal(m.sign, [1.0, -1.0])
    np.testing.assert_array_equal(m.unmatched, [0])
    aligned = m.align(est)
    assert aligned.shape == (300, 2)
    np.testing.assert_allclose(aligned[:, 1], truth[:, 1])


def test_match_columns_fewer_estimated_than_true():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((100, 3))
    est = truth[:, [2]] * 2.0
    m = match_columns(torch.as_tensor(est), truth)
    np.testing.assert_array_equal(m.est_index, [-1, -1, 0])
    assert np.isnan(m.align(est)[:, 0]).all()


def test_match_columns_overlap_on_supports():
    true = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    est = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)
    m = match_columns(est, true)
    assert m.method == "overlap"
    np.testing.assert_array_equal(m.est_index, [1, 2])
    np.testing.assert_array_equal(m.unmatched, [0])


# --------------------------------------------------------------------------------- support F1


def test_support_f1_exact_under_permutation():
    true = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    est = true[:, ::-1].copy()
    s = support_f1(est, true)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(s.matching.est_index, [1, 0])


def test_support_f1_hand_computed_with_permutation_and_extra_column():
    # true: factor 0 on features 0,1,2 ; factor 1 on features 3,4 ; feature 5 on both
    true = np.array(
        [[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [1, 1]],
        dtype=bool,
    )
    # est columns: (A) matches factor 1 with a miss and a false positive,
    #              (B) an extra non-empty column, (C) matches factor 0 with one miss.
    est = np.array(
        [
            # A  B  C
            [0, 0, 1],
            [0, 0, 1],
            [0, 1, 0],
            [1, 0, 0],
            [0, 0, 0],
            [1, 1, 1],
        ],
        dtype=bool,
    )
    est[1, 0] = True  # false positive of A on feature 1
    s = support_f1(est, true)
    np.testing.assert_array_equal(s.matching.est_index, [2, 0])
    np.testing.assert_array_equal(s.matching.unmatched, [1])
    # TP: C vs f0 -> features 0,1,5 = 3 ; A vs f1 -> features 3,5 = 2 ; TP = 5
    # predicted positives: A 3 (1,3,5), B 2 (2,5), C 3 (0,1,5) = 8 -> FP = 3
    # true positives total: 4 + 3 = 7 -> FN = 2
    assert (s.tp, s.fp, s.fn) == (5, 3, 2)
    assert s.precision == pytest.approx(5 / 8)
    assert s.recall == pytest.approx(5 / 7)
    assert s.f1 == pytest.approx(2 * (5 / 8) * (5 / 7) / (5 / 8 + 5 / 7))


def test_support_f1_extra_empty_column_is_free_but_nonempty_costs():
    true = np.array([[1, 0], [0, 1], [0, 1]], dtype=bool)
    est_empty = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    s = support_f1(est_empty, true)
    assert s.f1 == 1.0
    est_extra = est_empty.copy()
    est_extra[0, 1] = True
    s2 = support_f1(est_extra, true)
    assert (s2.tp, s2.fp, s2.fn) == (3, 1, 0)
    assert s2.precision == pytest.approx(3 / 4)
    assert s2.recall == 1.0


def test_support_f1_given_matching_and_empty_estimate():
    true = np.array([[1, 0], [0, 1]], dtype=bool)
    est = np.array([[1, 0], [0, 1]], dtype=bool)
    wrong = match_columns(np.array([[0, 1], [1, 0]], dtype=bool), true)  # swaps columns
    s = support_f1(est, true, matching=wrong)
    assert (s.tp, s.precision, s.recall, s.f1) == (0, 0.0, 0.0, 0.0)
    empty = support_f1(np.zeros((2, 3), dtype=bool), true)
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)


def test_support_f1_rejects_unthresholded_weights():
    with pytest.raises(ValueError, match="threshold"):
        support_f1(np.array([[0.3, 0.0]]), np.array([[True, False]]))
    # 0/1 integers and torch bool tensors are accepted
    s = support_f1(torch.tensor([[True, False]]), np.array([[1, 0]]))
    assert s.f1 == 1.0


# ------------------------------------------------------------------------ DCI (closed form)


def test_dci_from_importance_identity_and_uniform():
    ident = dci_from_importance(np.eye(3)[[2, 0, 1]])
    assert ident.disentanglement == pytest.approx(1.0)
    assert ident.completeness == pytest.approx(1.0)
    uni = dci_from_importance(np.ones((3, 3)))
    assert uni.disentanglement == pytest.approx(0.0, abs=1e-12)
    assert uni.completeness == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(uni.informativeness)


def test_dci_entropy_bases():
    # one code spread evenly over 2 of K_factor = 3 factors: D = 1 - log 2 / log 3
    r = np.array([[1.0, 1.0, 0.0]])
    res = dci_from_importance(r)
    assert res.disentanglement == pytest.approx(1 - math.log(2) / math.log(3))
    # each factor explained by a single code (1 code only): completeness 1
    assert res.completeness_per_factor[:2] == pytest.approx([1.0, 1.0])
    assert res.completeness_per_factor[2] == 0.0  # unexplained factor
    # one factor spread evenly over 2 of K_code = 3 codes: C = 1 - log 2 / log 3
    res2 = dci_from_importance(np.array([[1.0], [1.0], [0.0]]))
    assert res2.completeness == pytest.approx(1 - math.log(2) / math.log(3))
    assert res2.disentanglement == pytest.approx(1.0)  # single factor: entropy 0
    # hand-computed weighted disentanglement with 2 factors (base 2)
    r3 = np.array([[3.0, 1.0], [0.0, 4.0]])
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    res3 = dci_from_importance(r3)
    assert res3.disentanglement == pytest.approx(0.5 * (1 - h) + 0.5 * 1.0)
    np.testing.assert_allclose(res3.code_weights, [0.5, 0.5])
    pc = [1.0, 1 - (-(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8)))]
    assert res3.completeness == pytest.approx(np.mean(pc))


def test_dci_zero_importance_code_gets_zero_weight():
    r = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    res = dci_from_importance(r)
    assert res.disentanglement == pytest.approx(1.0)
    np.testing.assert_allclose(res.code_weights, [0.5, 0.5, 0.0])
    # completeness uses base K_code = 3 but each factor sits on one code: still 1
    assert res.completeness == pytest.approx(1.0)


def test_dci_from_importance_rejects_negative():
    with pytest.raises(ValueError):
        dci_from_importance(np.array([[1.0, -0.1]]))


# ------------------------------------------------------------------------ DCI (fitted)


@pytest.fixture(scope="module")
def factors():
    return np.random.default_rng(0).standard_normal((600, 2))


@pytest.mark.parametrize("regressor", ["gbt", "lasso"])
def test_dci_permuted_factors_are_perfect(factors, regressor):
    res = dci(factors[:, ::-1], factors, regressor=regressor, seed=0)
    assert res.disentanglement > 0.98
    assert res.completeness > 0.98
    assert res.informativeness < 0.05
    # the importance matrix is anti-diagonal
    assert res.importance[0, 1] > res.importance[0, 0]
    assert res.importance[1, 0] > res.importance[1, 1]


def test_dci_permuted_with_extra_constant_and_noise_code(factors):
    rng = np.random.default_rng(5)
    z = np.column_stack([factors[:, 1], np.zeros(600), factors[:, 0], rng.standard_normal(600)])
    res = dci(z, factors, regressor="lasso")
    assert res.disentanglement > 0.95
    assert res.completeness > 0.95
    assert res.code_weights[1] == 0.0


@pytest.mark.parametrize("regressor", ["gbt", "lasso"])
def test_dci_equal_mixture_has_no_disentanglement(factors, regressor):
    # every code is an equal (rotated) mixture of both factors: c = F H / sqrt(2)
    h = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2.0)
    res = dci(torch.as_tensor(factors @ h), factors, regressor=regressor, seed=0)
    assert res.disentanglement < 0.05
    assert res.completeness < 0.05


def test_dci_equal_mixture_four_factors_lasso():
    f = np.random.default_rng(2).standard_normal((600, 4))
    h2 = np.array([[1.0, 1.0], [1.0, -1.0]])
    h4 = np.kron(h2, h2) / 2.0  # orthogonal, all entries +-1/2
    res = dci(f @ h4, f, regressor="lasso")
    assert res.disentanglement < 0.02
    assert res.completeness < 0.02
    assert res.informativeness < 0.05


def test_dci_uninformative_codes(factors):
    z = np.random.default_rng(9).standard_normal((600, 2))
    res = dci(z, factors, regressor="lasso", alpha=0.05)
    assert res.informativeness > 0.9


def test_dci_is_reproducible_by_seed(factors):
    z = factors + 0.5 * np.random.default_rng(3).standard_normal(factors.shape)
    a = dci(z, factors, seed=1, regressor_kwargs={"n_estimators": 30})
    b = dci(z, factors, seed=1, regressor_kwargs={"n_estimators": 30})
    assert a.disentanglement == b.disentanglement
    assert a.informativeness == b.informativeness


def test_dci_input_checks(factors):
    with pytest.raises(ValueError):
        dci(factors[:10], factors)
    with pytest.raises(ValueError):
        dci(factors, np.ones((600, 1)))
    with pytest.raises(ValueError):
        dci(factors, factors, regressor="forest")
    with pytest.warns(UserWarning, match="noisy"):
        dci(factors[:100], factors[:100], regressor="lasso")
    with pytest.raises(ValueError, match=r"test_size must be in \(0, 1\), got '0.2'"):
        dci(factors, factors, test_size="0.2")
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        dci(factors, factors, seed=-1)


def test_support_f1_rejects_a_matching_that_uses_a_column_twice():
    est = np.array([[1], [1], [1]], dtype=bool)
    true = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    m = match_columns(est, true, method="overlap")
    bad = type(m)(
        est_index=np.array([0, 0]),
        sign=np.ones(2),
        unmatched=np.array([], dtype=int),
        similarity=m.similarity,
        method="overlap",
    )
    with pytest.raises(ValueError, match="two true factors"):
        support_f1(est, true, matching=bad)


# ------------------------------------------------------------------- bad input: NaN, active
def test_nan_inputs_are_refused_naming_the_argument():
    rng = np.random.default_rng(0)
    z, f = rng.random((20, 3)), rng.random((20, 2))
    nan = z.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x_pred contains NaN or inf \(1 of 2 entries\)"):
        mse(np.ones(2), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="x_true must be numeric"):
        mse(["a"], ["b"])
    with pytest.raises(ValueError, match="est contains NaN or inf"):
        match_columns(nan, f)
    with pytest.raises(ValueError, match="truth contains NaN or inf"):
        match_columns(f, np.full((20, 2), np.inf))
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        factors_recovered(nan, f)
    with pytest.raises(ValueError, match="factors contains NaN or inf"):
        factors_recovered(f, nan)
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        dci(nan, f)
    with pytest.raises(ValueError, match="est_support contains NaN or inf"):
        support_f1(np.array([[np.nan, 1.0]]), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="support contains NaN or inf"):
        anchor_report(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="importance contains NaN or inf"):
        dci_from_importance(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="est contains NaN or inf"):
        match_columns(z, f).align(nan)


def test_factors_recovered_active_as_mask_or_indices():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((200, 2))
    codes = np.c_[rng.standard_normal(200), Z[:, 1], Z[:, 0]]
    assert factors_recovered(codes, Z, active=[False, True, True]).tolist() == [True, True]
    assert factors_recovered(codes, Z, active=[2, 1]).tolist() == [True, True]
    assert factors_recovered(codes, Z, active=np.array([1])).tolist() == [False, True]
    assert factors_recovered(codes, Z, active=[0]).tolist() == [False, False]
    assert factors_recovered(codes, Z, active=[]).tolist() == [False, False]


@pytest.mark.parametrize(
    "active, match",
    [
        ([True, False], "boolean mask of length 2, but z has 3 codes"),
        ([1, 0, 1], r"distinct code indices in 0\.\.2 \(or be a boolean mask\), got \[1, 0, 1\]"),
        ([3], r"distinct code indices in 0\.\.2"),
        ([-1], r"distinct code indices in 0\.\.2"),
        ([0.5], "boolean mask of length 3 or integer code indices, got dtype float64"),
        ([[True, False, True]], "active must be 1-d"),
    ],
)
def test_factors_recovered_rejects_a_bad_active(active, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        factors_recovered(rng.random((10, 3)), rng.random((10, 2)), active=active)


@pytest.mark.parametrize("threshold", [2, -0.1, float("nan"), "0.7", True])
def test_factors_recovered_threshold_is_checked(threshold):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        factors_recovered(rng.random((10, 3)), rng.random((10, 2)), threshold=threshold)


def test_factors_recovered_rows_must_match():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same number of rows, got 10 and 12"):
        factors_recovered(rng.random((10, 3)), rng.random((12, 2)))


def test_factors_recovered_counts_a_monotone_nonlinear_code():
    # exp(5 z) is a strictly increasing transform of z: rank correlation 1, though its
    # Pearson correlation with z is far below the threshold (a heavy lognormal tail)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((500, 2))
    codes = np.c_[-(Z[:, 1] ** 3), np.exp(5.0 * Z[:, 0])]
    assert abs(np.corrcoef(codes[:, 1], Z[:, 0])[0, 1]) < 0.7
    assert factors_recovered(codes, Z).tolist() == [True, True]
    # a non-monotone transform (z^2) is not a recovery
    assert factors_recovered(np.c_[Z[:, 0] ** 2, Z[:, 1]], Z).tolist() == [False, True]


@pytest.mark.parametrize("regressor", ["gbt", "lasso"])
def test_dci_informativeness_does_not_depend_on_the_factors_units(factors, regressor):
    # informativeness is the MSE of the standardised factor: shifting and scaling the true
    # factors (mean 5, sd 3) changes nothing
    z = factors + 0.5 * np.random.default_rng(3).standard_normal(factors.shape)
    kwargs = {"n_estimators": 20} if regressor == "gbt" else {}
    opts = dict(regressor=regressor, seed=1, regressor_kwargs=kwargs)
    a = dci(z, factors, **opts)
    b = dci(z, 5.0 + 3.0 * factors, **opts)
    np.testing.assert_allclose(b.nmse_per_factor, a.nmse_per_factor, rtol=1e-6)
    # noise of sd 0.5 on a unit factor: the best linear prediction leaves 0.2 of its variance
    assert 0.1 < a.informativeness < 0.35


def test_match_columns_auto_uses_correlation_unless_both_inputs_are_boolean():
    # boolean codes against real-valued factors: "auto" must correlate, not compare supports
    # (a real-valued truth is no support)
    est = np.array([[True, False], [False, True], [True, False], [False, False]])
    truth = np.array([[0.1], [0.9], [0.2], [0.3]])
    m = match_columns(est, truth)
    assert m.method == "corr"
    assert m.est_index.tolist() == [1]  # column 1 is 1 exactly where truth is largest
    assert match_columns(est, truth.astype(bool) | est[:, :1]).method == "overlap"


def test_heldout_nll_is_the_mean_negative_log_likelihood_per_row():
    from pyro_gfa.metrics import heldout_nll

    class Model:  # log p(x_i) of three rows, and what heldout_nll asked for
        def log_likelihood(self, X, num_samples, seed):
            self.asked = (num_samples, seed)
            return np.array([-1.0, -2.0, -6.0])

    model = Model()
    assert heldout_nll(model, np.zeros((3, 2)), num_samples=7, seed=3) == pytest.approx(3.0)
    assert model.asked == (7, 3)
