"""The evaluation protocols of the benchmark scripts, on tiny hand-made inputs.

The figures of docs/results.md come from these helpers: how users, documents and cells are
split, what a held-out user's fold-in items are, which cells a reference is fitted on, and
how the per-split values are averaged. Each test checks hand values or a property of the
documented protocol, with every fit replaced, so that the file takes a few seconds.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from _benchmarks import load


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing lands in results/


def L(r: int) -> float:
    """NDCG discount of rank ``r``."""
    return 1.0 / math.log2(r + 1)


# =======================================================================================
# MovieLens
def write_ml100k(folder: Path, ratings: list[tuple[int, int, int]], n_movies: int) -> None:
    """A stand-in for recbole's ml-100k files: ``ratings`` of (user, movie, stars)."""
    folder.mkdir(exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{i}\t{r}\t0" for u, i, r in ratings]
    (folder / "ml-100k.inter").write_text("\n".join(inter) + "\n")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items += [f"{i}\tMovie {i}\t1990\tDrama" for i in range(1, n_movies + 1)]
    (folder / "ml-100k.item").write_text("\n".join(items) + "\n")
    users = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    users += [f"{u}\t30\tF\tother\t00000" for u in sorted({u for u, _, _ in ratings})]
    (folder / "ml-100k.user").write_text("\n".join(users) + "\n")


@pytest.mark.parametrize(
    "name, base, changed",
    [
        # VSC on sparse_vae_1x100's network with its KL annealing
        ("vsc_1x100", "vsc", {"hidden": (100,), "kl_warmup": 20}),
        # the denoising encoder of Liang et al. 2018
        ("vae_1x100_drop", "vae_1x100", {"input_dropout": 0.5}),
        ("sparse_vae_1x100_drop", "sparse_vae_1x100", {"input_dropout": 0.5}),
    ],
)
def test_movielens_variants_change_only_what_their_label_says(monkeypatch, name, base, changed):
    ml = load("movielens", monkeypatch)
    args = argparse.Namespace(em_warmup=20)
    variant, original = ml.MODELS[name], ml.MODELS[base]
    assert variant.hidden == ml.SMALL
    config, original_config = (m.make(300, args).get_config() for m in (variant, original))
    if "prior" in config:  # prior objects compare by identity
        assert repr(config.pop("prior")) == repr(original_config.pop("prior"))
    assert config == {**original_config, **changed}


def test_movielens_binarises_at_4_stars_keeps_300_movies_and_users_with_5(monkeypatch, tmp_path):
    from pyro_gfa.data import real

    ml = load("movielens", monkeypatch)
    ratings = (
        [(1, i, r) for i, r in zip(range(1, 6), (4, 4, 5, 5, 4))]  # exactly 5 positives: kept
        + [(2, i, 5) for i in range(1, 5)]  # 4 positives (and a 3): dropped
        + [(2, 6, 3)]
        + [(3, i, 4) for i in range(1, 7)]  # 6 positives, a 3, and movie 310
        + [(3, 7, 3), (3, 310, 5)]
        + [(4, i, 3) for i in range(1, 6)]  # no rating >= 4: dropped
    )
    write_ml100k(tmp_path, ratings, n_movies=310)
    monkeypatch.setattr(real, "_data_file", lambda name, loader, *parts: str(tmp_path / parts[-1]))
    X, data = ml.load_data()
    # movies by positives, ties by lower id: 1-4 (3 each), 5 (2), 6 and 310 (1 each), then
    # 7, 8, ... 299 with none; movies 300-309 are not among the 300
    assert X.shape == (2, 300)
    np.testing.assert_array_equal(data.item_ids[:8], [1, 2, 3, 4, 5, 6, 310, 7])
    assert 300 not in data.item_ids
    expect = np.zeros((2, 300))
    expect[0, :5] = 1  # user 1
    expect[1, :7] = 1  # user 3: movies 1-6 and 310
    np.testing.assert_array_equal(X, expect)


def ml_matrix() -> np.ndarray:
    """13 users x 12 movies with 5, 6, ..., 12 and then 5 more positives."""
    n_pos = [5, 6, 7, 8, 9, 10, 11, 12, 5, 9, 10, 5, 12]
    X = np.zeros((13, 12), np.float32)
    for u, n in enumerate(n_pos):
        X[u, np.random.default_rng(u).choice(12, n, replace=False)] = 1
    return X


def test_movielens_split_holds_out_20_percent_of_users_and_of_their_positives(monkeypatch):
    ml = load("movielens", monkeypatch)
    X = ml_matrix()
    sp = ml.make_split(X, 3)
    # round(0.2 * 13) = 3 held-out users (not int(2.6) = 2); every user in exactly one set
    assert len(sp["test"]) == 3 and len(sp["train"]) == 10
    np.testing.assert_array_equal(np.sort(np.r_[sp["train"], sp["test"]]), np.arange(13))
    np.testing.assert_array_equal(sp["X_train"], X[sp["train"]])
    np.testing.assert_array_equal(sp["X_test"], X[sp["test"]])
    held, fold = sp["heldout"], sp["fold"].astype(bool)
    pos = X[sp["test"]] > 0
    # int(0.2 n) held-out items (9 positives: 1, 10 positives: 2), the other positives fold in
    np.testing.assert_array_equal(held.sum(1), (0.2 * pos.sum(1)).astype(int))
    assert not (held & ~pos).any() and not (held & fold).any()
    np.testing.assert_array_equal(held | fold, pos)


def test_movielens_split_follows_its_seed(monkeypatch):
    """Users and held-out items are drawn by ``default_rng(seed)``: the permutation of the
    users, then one draw without replacement per held-out user (module doc)."""
    ml = load("movielens", monkeypatch)
    X = ml_matrix()
    tests = {tuple(ml.make_split(X, s)["test"]) for s in range(5)}
    assert len(tests) > 1  # the seed changes the held-out users
    for seed in (0, 4):
        sp = ml.make_split(X, seed)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(13)
        np.testing.assert_array_equal(sp["test"], np.sort(perm[:3]))
        for i, u in enumerate(sp["test"]):
            items = np.flatnonzero(X[u])
            drawn = rng.choice(items, size=int(0.2 * items.size), replace=False)
            np.testing.assert_array_equal(np.flatnonzero(sp["heldout"][i]), np.sort(drawn))


class CopyModel:
    """Scores ``100 x + b`` with ``b = 14, 13, ..., 1``: the input items first, then by index."""

    def reconstruct(self, X):
        return 100 * np.asarray(X, np.float64) + np.arange(14, 0, -1)


def test_movielens_scores_held_out_items_from_the_fold_in_items_only(monkeypatch):
    ml = load("movielens", monkeypatch)
    # user A: fold-in {0, 1, 2, 3}, held out {4, 5}; user B: fold-in {0, 1, 5}, held out
    # {12, 13}
    held = np.zeros((2, 14), bool)
    held[0, [4, 5]] = held[1, [12, 13]] = True
    fold = np.zeros((2, 14), np.float32)
    fold[0, [0, 1, 2, 3]] = fold[1, [0, 1, 5]] = 1
    full = fold + held
    m = ml.evaluate(CopyModel(), {"fold": fold, "heldout": held, "X_test": full})
    # fold-in items removed from the ranking: A ranks 4, 5 first (Recall@5 = NDCG@10 = 1;
    # with them, only 4 would be in the top 5); B ranks 2, 3, 4, 6, ..., 11, 12, 13: hits
    # at ranks 10 and 11 (Recall@5 = 0)
    assert m["recall5"] == pytest.approx(0.5)
    assert m["ndcg10"] == pytest.approx((1 + L(10) / (L(1) + L(2))) / 2)
    # NLL: p = (100 fold + b) / (105 + 100 n_fold) (b sums to 105), held-out b: A 10 and 9,
    # B 2 and 1
    nll = [-sum(math.log(b / d + 1e-6) for b in bs) for bs, d in [((10, 9), 505), ((2, 1), 405)]]
    assert m["nll"] == pytest.approx(np.mean(nll), rel=1e-12)
    # the authors' variant: the full row in and scored, its positives ranked first
    b = np.arange(14, 0, -1)
    nll_full = [-np.log((100 + b[r > 0]) / (105 + 100 * r.sum()) + 1e-6).sum() for r in full]
    assert m["nll_full"] == pytest.approx(np.mean(nll_full), rel=1e-12)
    assert m["recall5_full"] == m["ndcg10_full"] == pytest.approx(1.0)


def test_movielens_probabilities_clip_and_fall_back_to_uniform(monkeypatch):
    ml = load("movielens", monkeypatch)
    est = SimpleNamespace(reconstruct=lambda X: np.array([[-1.0, 1.0, 3.0, 0.0], [0, 0, 0, 0]]))
    p = ml.predicted_probs(est, np.zeros((2, 4)))
    np.testing.assert_allclose(p, [[0, 0.25, 0.75, 0], [0.25] * 4])
    # NMF's exact zeros cost -log(1e-6) per held-out item, the authors' floor
    assert ml.EPS == 1e-6


def test_movielens_popularity_is_add_one_smoothed_training_frequency(monkeypatch):
    ml = load("movielens", monkeypatch)
    pop = ml.Popularity().fit(np.array([[1.0, 0, 1], [1, 0, 0]]))
    # counts 2, 0, 1 -> (3, 1, 2) / 6, the same for every user
    np.testing.assert_allclose(pop.reconstruct(np.zeros((2, 3))), [[0.5, 1 / 6, 1 / 3]] * 2)


def test_movielens_summary_is_mean_and_sample_sd_of_the_fold_in_metrics(monkeypatch):
    ml = load("movielens", monkeypatch)
    assert ml._ms(np.array([1.0, 2.0, 4.0]), 2) == "2.33 ± 1.53"  # sd with ddof = 1
    rows = []
    for seed, (nll, r5, n10) in enumerate([(150.0, 0.2, 0.3), (152.0, 0.4, 0.5)]):
        row = {"model": "vae", "seed": str(seed), "epochs": "40", "lr": "0.003"}
        row.update(nll=nll, recall5=r5, ndcg10=n10, nll_full=1.0, recall5_full=0.9)
        row.update(ndcg10_full=0.8, fit_s=1.0, active_factors="30")
        rows.append({k: str(v) for k, v in row.items()})
    line = ml.summarize(rows).splitlines()[2]
    assert "| 151.00 ± 1.41 | 0.300 ± 0.141 | 0.400 ± 0.141 |" in line


def test_movielens_paired_differences_to_nmf_by_hand(monkeypatch):
    ml = load("movielens", monkeypatch)

    def row(model, seed, nll, r5, n10):
        ep = "40" if model == "vae" else ""
        return {
            "model": model,
            "seed": str(seed),
            "epochs": ep,
            "lr": "",
            "nll": str(nll),
            "recall5": str(r5),
            "ndcg10": str(n10),
        }

    rows = [
        row("nmf", 0, 40.0, 0.30, 0.30),
        row("nmf", 1, 42.0, 0.20, 0.40),
        row("vae", 0, 39.0, 0.35, 0.20),
        row("vae", 1, 43.0, 0.30, 0.30),
        row("vae", 7, 1.0, 1.0, 1.0),
    ]  # split 7 has no NMF row: left out
    (line,) = [x for x in ml.paired_to_nmf(rows).splitlines() if x.startswith("| VAE")]
    # recall +0.05 / +0.10, ndcg -0.10 / -0.10, nll -1 / +1 (lower is better)
    assert line == (
        "| VAE | 40 | - | 2 | 0.075 ± 0.035; 2 of 2 | -0.100 ± 0.000; 0 of 2"
        " | 0.000 ± 1.414; 1 of 2 |"
    )
    assert ml.paired_to_nmf([r for r in rows if r["model"] == "vae"]) == ""


def test_movielens_top_movies_are_the_largest_loadings_in_the_support(monkeypatch):
    ml = load("movielens", monkeypatch)
    col = np.array([0.1, -0.9, 0.5, 0.3])
    keep = np.array([True, True, False, True])
    np.testing.assert_array_equal(ml._top(col, keep, 3), [1, 3, 0])
    np.testing.assert_array_equal(ml._top(col, keep, 5), [1, 3, 0])  # fewer than n in support


def test_movielens_genre_coherence_by_hand(monkeypatch, tmp_path):
    ml = load("movielens", monkeypatch)
    data = SimpleNamespace(genres=[("Action",), ("Action", "Drama"), ("Comedy",)])
    (tmp_path / "loadings").mkdir()
    W = np.array([[0.9], [0.5], [0.1]])
    np.savez(tmp_path / "loadings" / "nmf_ena_s0.npz", W=W, support=W > 0)
    rows = [{"model": "nmf", "epochs": "", "lr": "", "seed": "0"}]
    text = ml.genre_coherence(tmp_path, rows, data, n=3)
    # Jaccard of the pairs (0, 1), (0, 2), (1, 2): 1/2, 0, 0; chance: the same three pairs
    # (a movie is not paired with itself)
    assert "| 0.167 ± nan |" in text
    assert "3 movies drawn at random: 0.167." in text


# =======================================================================================
# news_text
def test_news_splits_are_seeded_80_20_document_splits(monkeypatch):
    nt = load("news_text", monkeypatch)
    tr, te = nt.make_split(20, 0)
    assert len(te) == 4 and len(tr) == 16
    np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(20))
    assert len({tuple(np.sort(nt.make_split(20, s)[1])) for s in range(5)}) > 1
    np.testing.assert_array_equal(nt.make_split(20, 3)[1], nt.make_split(20, 3)[1])


def test_news_nll_per_document_and_per_word_by_hand(monkeypatch):
    from scipy.stats import multinomial

    nt = load("news_text", monkeypatch)
    X = np.array([[2.0, 0.0], [1.0, 3.0]])
    P = np.array([[0.5, 0.5], [0.25, 0.75]])
    doc, word = nt.multinomial_nll(X, P)
    cross = [2 * math.log(2), math.log(4) - 3 * math.log(0.75)]
    # per word: all held-out tokens pooled (not a mean of per-document rates)
    assert word == pytest.approx(sum(cross) / 6, rel=1e-12)
    # per document: the multinomial log-pmf, coefficient included
    logpmf = [multinomial.logpmf(x, x.sum(), p) for x, p in zip(X, P)]
    assert doc == pytest.approx(-np.mean(logpmf), rel=1e-12)


def test_news_completion_halves_are_disjoint_and_seeded(monkeypatch):
    nt = load("news_text", monkeypatch)
    X = np.array([[3, 0, 2], [1, 0, 0], [0, 4, 3], [2, 2, 2]], np.float32)
    keep, obs, score = nt.completion_split(X, 7)
    np.testing.assert_array_equal(keep, [0, 2, 3])  # a 1-token document has no halves
    np.testing.assert_array_equal(obs + score, X[keep])
    np.testing.assert_array_equal(obs.sum(1), [2, 3, 3])  # floor(n / 2) observed
    assert (obs >= 0).all() and (score >= 0).all()
    # the tokens are shuffled with default_rng(1000 + seed), one document after the other
    rng = np.random.default_rng(1007)
    for r, i in enumerate(keep):
        tokens = np.repeat(np.arange(3), X[i].astype(int))
        rng.shuffle(tokens)
        np.testing.assert_array_equal(obs[r], np.bincount(tokens[: tokens.size // 2], minlength=3))


def test_news_plugin_probabilities_are_smoothed_distributions(monkeypatch):
    nt = load("news_text", monkeypatch)
    m = SimpleNamespace(reconstruct=lambda X: np.array([[1.0, 3.0, 0.0, -2.0], [0, 0, 0, 0]]))
    P, zero = nt.plugin_probs(m, None)
    e = 1e-6
    np.testing.assert_allclose(P[0], (1 - e) * np.array([0.25, 0.75, 0, 0]) + e / 4, rtol=1e-12)
    np.testing.assert_allclose(P[1], 0.25)  # nothing reconstructed: uniform
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(zero, [[False, False, True, True], [False] * 4])


class UniformDeep:
    """A stand-in for a trained VAE over ``G`` words: every word has probability ``1 / G``
    (reconstruction and importance-sampled marginal alike), and it records its inputs."""

    kl_tol = 0.01

    def __init__(self, G):
        self.G, self.seen, self.code_kl_ = G, [], np.array([1.0, 0.0])

    def fit(self, X, **kw):
        return self

    def reconstruct(self, X):
        self.seen.append(np.array(X))
        return np.ones_like(np.asarray(X, np.float64))

    def log_likelihood(self, X, num_samples, seed):
        from scipy.stats import multinomial

        return np.array([multinomial.logpmf(x, x.sum(), np.full(self.G, 1 / self.G)) for x in X])


def test_news_scores_of_a_uniform_model_are_log_G_per_word(monkeypatch):
    nt = load("news_text", monkeypatch)
    model = UniformDeep(4)
    monkeypatch.setitem(nt.MODELS, "uniform", nt.Spec("uniform", lambda s, a: model, deep=True))
    X_te = np.array([[3, 0, 2, 0], [1, 0, 0, 0], [0, 4, 3, 1]], np.float32)
    args = argparse.Namespace(epochs=1, is_samples=3)
    row, _ = nt.fit_and_score("uniform", X_te, X_te, 0, args)
    for key in ("nll_word_is", "nll_word_plugin", "nll_word_completion"):
        assert float(row[key]) == pytest.approx(math.log(4), abs=1e-4), key
    # per document, coefficient included: n log 4 - log(n! / prod x!)
    coef = [math.log(10), 0.0, math.log(8 * 7 * 6 * 5 / 6)]
    doc = np.mean([n * math.log(4) - c for n, c in zip((5, 1, 8), coef)])
    assert float(row["nll_doc_plugin"]) == pytest.approx(doc, abs=1e-3)
    assert float(row["nll_doc_is"]) == pytest.approx(doc, abs=1e-3)
    assert row["completion_docs"] == 2 and row["active_factors"] == 1
    # document completion: the model sees the observed half only, never the scored tokens
    whole, half = model.seen
    np.testing.assert_array_equal(whole, X_te)
    np.testing.assert_array_equal(half.sum(1), [2, 4])
    assert (half <= X_te[[0, 2]]).all()


def test_news_summary_lists_every_splits_per_word_scores(monkeypatch):
    nt = load("news_text", monkeypatch)
    rows = [
        {
            "model": "vae",
            "epochs": "40",
            "seed": "1",
            "nll_word_is": "5.1",
            "nll_word_plugin": "5.2",
            "nll_word_completion": "5.3",
        },
        {
            "model": "lda",
            "epochs": "",
            "seed": "0",
            "nll_word_is": "",
            "nll_word_plugin": "5.4",
            "nll_word_completion": "5.5",
        },
    ]
    md = nt.summarize(rows).splitlines()
    assert "| model | epochs | split 0 | split 1 |" in md
    assert "| VAE | 40 |  | 5.1 / 5.2 / 5.3 |" in md  # no split-0 row: an empty cell
    assert "| LDA | - | - / 5.4 / 5.5 |  |" in md  # no IS for LDA


def test_news_beta_vae_and_small_vsc_are_the_documented_models(monkeypatch):
    nt = load("news_text", monkeypatch)
    args = argparse.Namespace(epochs=40)
    beta = nt.MODELS["beta_vae"].make((10, 30), args).get_config()
    vae = nt.MODELS["vae"].make((10, 30), args).get_config()
    assert beta == {**vae, "beta": 2.0}  # the VAE row's model but for beta
    vsc = nt.MODELS["vsc_1x100"].make((10, 30), args).get_config()
    assert vsc == {
        **nt.MODELS["vsc"].make((10, 30), args).get_config(),
        "hidden": nt.SMALL,
        "kl_warmup": 20,
    }
    assert vsc["slab_prob"] == 0.01 and vsc["likelihood"] == "multinomial"


def test_news_summary_is_mean_and_sample_sd(monkeypatch):
    nt = load("news_text", monkeypatch)
    assert nt._ms(["1", "2", "4", ""], ".3f") == "2.333 ± 1.528"  # ddof = 1, blanks skipped
    assert nt._ms(["5"], ".1f") == "5.0 ± n/a"


# =======================================================================================
# zeisel_classification
def zeisel_counts(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """20 cells (4 classes of 5) x 700 genes of counts; genes 0-59 are 0 in every cell."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(rng.gamma(2.0, 3.0, 700), (20, 700)).astype(np.float64)
    X[:, :60] = 0
    return X, np.repeat(np.arange(4), 5)


def test_zeisel_splits_are_stratified_and_seeded(monkeypatch):
    zc = load("zeisel_classification", monkeypatch)
    X, y = zeisel_counts()
    tests = set()
    for seed in range(5):
        sp = zc.prepare_split(X, y, seed)
        assert sorted(y[sp["test"]]) == [0, 1, 2, 3]  # 20% of every class
        np.testing.assert_array_equal(np.sort(np.r_[sp["train"], sp["test"]]), np.arange(20))
        np.testing.assert_array_equal(sp["y"][1], y[sp["test"]])
        tests.add(tuple(np.sort(sp["test"])))
    assert len(tests) > 1


def test_zeisel_preprocessing_is_fitted_on_the_training_cells_only(monkeypatch):
    """Quantile reference, the 558 genes and the standardisation come from the training
    cells: the held-out cells' counts may change anything but their own rows."""
    from pyro_gfa.data.real import most_variable_genes, quantile_normalize, quantile_reference

    zc = load("zeisel_classification", monkeypatch)
    X, y = zeisel_counts()
    sp = zc.prepare_split(X, y, 0)
    tr, te = sp["train"], sp["test"]
    ref = quantile_reference(X[tr])
    genes = most_variable_genes(quantile_normalize(X[tr], ref), 558)
    assert sp["genes"].size == 558 and not (sp["genes"] < 60).any()
    np.testing.assert_array_equal(sp["genes"], genes)
    np.testing.assert_allclose(sp["raw"][0], quantile_normalize(X[tr], ref)[:, genes])
    np.testing.assert_allclose(sp["raw"][1], quantile_normalize(X[te], ref)[:, genes])
    np.testing.assert_array_equal(sp["counts"][0], X[tr][:, genes])
    np.testing.assert_array_equal(sp["counts"][1], X[te][:, genes])
    raw_tr, raw_te = sp["raw"]
    mu, sd = raw_tr.mean(0), raw_tr.std(0)
    np.testing.assert_allclose(sp["z"][0], (raw_tr - mu) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sp["z"][1], (raw_te - mu) / sd, rtol=1e-5, atol=1e-5)

    # the held-out cells now have genes 0-59 as their largest counts: with them in the
    # reference or the gene variances, those genes (constant on the training cells) and
    # every training row would change
    X2 = X.copy()
    X2[te, :60] = 1000 + np.arange(60)
    sp2 = zc.prepare_split(X2, y, 0)
    np.testing.assert_array_equal(sp2["test"], te)
    np.testing.assert_array_equal(sp2["genes"], sp["genes"])
    for inp in ("raw", "z", "counts"):
        np.testing.assert_array_equal(sp2[inp][0], sp[inp][0])


def test_zeisel_accuracy_and_errors_are_of_the_held_out_cells(monkeypatch, tmp_path):
    import pyro_gfa.data

    zc = load("zeisel_classification", monkeypatch)
    X, y = zeisel_counts()
    data = SimpleNamespace(X=X, labels=y, label_names=[f"c{c}" for c in range(4)])
    monkeypatch.setattr(pyro_gfa.data, "load_zeisel", lambda: data)
    monkeypatch.setattr(zc, "fit_model", lambda m, X_tr, X_te, *a: (X_tr[:, :2], X_te[:, :2], {}))
    te = zc.prepare_split(X, y, 1)["test"]

    def classify(f_tr, y_tr, f_te, svm=False):
        pred = y[te].copy()
        pred[[0, 2]] = (pred[[0, 2]] + 1) % 4  # held-out cells te[0] and te[2] wrong
        return 0.75, pred

    monkeypatch.setattr(zc, "classify", classify)
    args = argparse.Namespace(splits=[1], models=["pca"], inputs=["raw"], epochs=1)
    args.em_warmup, args.out, args.resume = None, str(tmp_path), False
    (row,) = zc.run(args, log=lambda line: None)
    assert row["accuracy"] == "0.5000" and row["train_accuracy"] == "0.7500"  # 2 of 4 right
    assert row["errors"].split() == [str(te[0]), str(te[2])]  # cell indices, not positions


def test_zeisel_classifier_is_the_documented_logistic_regression(monkeypatch):
    import sklearn.linear_model

    zc = load("zeisel_classification", monkeypatch)
    made = []

    class Recorded(sklearn.linear_model.LogisticRegression):
        def __init__(self, **kw):
            made.append(kw)
            super().__init__(**kw)

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", Recorded)
    f = np.r_[np.zeros((5, 1)), np.ones((5, 1))] + np.linspace(0, 0.1, 10)[:, None]
    train_acc, pred = zc.classify(f, np.repeat([0, 1], 5), np.array([[0.0], [1.0]]))
    assert train_acc == 1.0 and list(pred) == [0, 1]
    assert made and made[-1]["C"] == 1.0 and made[-1]["max_iter"] == 5000


def zeisel_rows() -> list[dict]:
    rows = []
    spec = [
        ("genes", "raw", [0.90, 0.92, 0.94], "1 2 3"),
        ("genes", "z", [0.50, 0.50, 0.50], "1 2 3"),
        ("pca", "raw", [0.88, 0.91, 0.90], "2 3 4"),
    ]
    for model, inp, accs, errors in spec:
        for seed, acc in enumerate(accs):
            rows.append(
                {
                    "model": model,
                    "input": inp,
                    "seed": str(seed),
                    "accuracy": f"{acc:.4f}",
                    "train_accuracy": "0.9990",
                    "errors": errors,
                    "fit_s": "1.0",
                    "epochs": "",
                    "active_factors": "",
                }
            )
    return rows


def test_zeisel_summary_mean_sd_and_paired_differences_by_hand(monkeypatch):
    zc = load("zeisel_classification", monkeypatch)
    md = zc.summarize(zeisel_rows(), unassigned={"3"})
    # sd over splits with ddof = 1; the paired reference is the all-genes row on raw
    genes = "| all 558 genes, no factor model | raw | 0.920 (0.020) | +0.0000 (0.0000) on 3 | 3 |"
    # PCA - genes on the same split: -0.02, -0.01, -0.04
    pca = "| PCA | raw | 0.897 (0.015) | -0.0233 (0.0153) on 3 | 3 |"
    assert genes in md and pca in md
    # errors: 3 per split, 2 of them ({2, 3}) shared with the genes row; every row of the
    # table gets cells 2 and 3 wrong, one of them (3) without a subclass
    assert "| PCA | raw | 0.999 | 0.897 | 3.0 | 2.0 | 3 |" in md
    assert "every row of this table gets wrong: 2.0 per split, 1.0 of them" in md


def test_zeisel_paired_differences_match_splits(monkeypatch):
    zc = load("zeisel_classification", monkeypatch)
    rows = zeisel_rows()
    ref = zc.accuracy_by_seed(rows, "genes")
    assert ref == {"0": 0.90, "1": 0.92, "2": 0.94}
    pca = [r for r in rows if r["model"] == "pca"]
    diff = zc.paired_differences(pca[:2] + [{**pca[2], "seed": "9"}], ref)
    np.testing.assert_allclose(diff, [-0.02, -0.01])  # split 9 has no reference: left out


@pytest.mark.filterwarnings("ignore::UserWarning")  # one epoch: no factor is active yet
@pytest.mark.parametrize(
    "model, cls, prior",
    [
        ("factvae_clusters", "FactVAE", "GroupLasso"),
        ("factvae_clusters_1x100", "FactVAE", "GroupLasso"),
        ("jmvae_clusters", "JMVAEPlus", "NoPrior"),
        ("jmvae_clusters_1x100", "JMVAEPlus", "NoPrior"),
        ("oivae_clusters_1x100", "OIVAE", "GroupLasso"),
    ],
)
def test_zeisel_grouped_models_take_the_gene_clusters_as_groups(monkeypatch, model, cls, prior):
    import pyro_gfa as gfa

    zc = load("zeisel_classification", monkeypatch)
    rng = np.random.default_rng(0)
    X_tr, X_te = rng.gamma(2.0, 30.0, (48, 40)), rng.gamma(2.0, 30.0, (8, 40))
    fitted = []
    klass = getattr(gfa, cls)
    fit = klass.fit
    monkeypatch.setattr(
        klass,
        "fit",
        lambda self, X, **kw: fitted.append((self, X, kw)) or fit(self, X, **kw),
    )
    f_tr, f_te, extra = zc.fit_model(model, X_tr, X_te, 0, epochs=1)
    ((m, X, kw),) = fitted
    assert type(m).__name__ == cls and type(m.get_config()["prior"]).__name__ == prior
    # the oi-VAE's 3 x 100 networks, or the small networks of the other _1x100 rows
    net = zc.NETS["_1x100" if model.endswith("_1x100") else ""]
    config = m.get_config()
    assert config["generator_hidden"] == config["encoder_hidden"] == net["hidden"]
    assert (kw["lr"], kw["batch_size"]) == (net["lr"], net["batch_size"])
    # the oi-VAE's groups: k-means clusters of the genes, on the data as fitted (one global scale)
    np.testing.assert_allclose(X, X_tr / X_tr.std(), rtol=1e-6)
    clusters = zc.gene_clusters(X, 0)
    assert [list(ix) for ix in m.groups.index] == [list(c) for c in clusters]
    assert f_tr.shape == (48, zc.K) and f_te.shape == (8, zc.K) and np.isfinite(f_te).all()


@pytest.mark.filterwarnings("ignore::UserWarning")  # one epoch: shorter than the warm-ups
@pytest.mark.parametrize(
    "base, cls, mask",
    [("sparse_vae", "SparseVAE", True), ("vae", "SparseVAE", False), ("vsc", "VSC", False)],
)
@pytest.mark.parametrize("net", ["", "_1x100"])
def test_zeisel_networks_are_the_documented_ones(monkeypatch, base, cls, mask, net):
    import pyro_gfa as gfa

    zc = load("zeisel_classification", monkeypatch)
    rng = np.random.default_rng(0)
    X_tr, X_te = rng.normal(size=(40, 12)).astype(np.float32), rng.normal(size=(6, 12))
    fitted = []
    fit = gfa.SparseVAE.fit
    monkeypatch.setattr(
        gfa.SparseVAE, "fit", lambda self, X, **kw: fitted.append((self, kw)) or fit(self, X, **kw)
    )
    f_tr, f_te, _ = zc.fit_model(base + net, X_tr, X_te.astype(np.float32), 0, epochs=1)
    ((m, kw),) = fitted
    expected = {"": ((100, 100, 100), 1e-2, 512), "_1x100": ((100,), 1e-3, 128)}[net]
    assert type(m).__name__ == cls and m.get_config().get("mask", False) is mask
    assert (tuple(m.hidden), kw["lr"], kw["batch_size"]) == expected
    assert f_tr.shape == (40, zc.K) and f_te.shape == (6, zc.K)


def test_zeisel_lda_factors_are_topic_proportions_of_the_counts(monkeypatch):
    zc = load("zeisel_classification", monkeypatch)
    rng = np.random.default_rng(0)
    X_tr, X_te = rng.poisson(3.0, (40, 30)).astype(np.float32), rng.poisson(3.0, (6, 30))
    f_tr, f_te, _ = zc.fit_model("lda", X_tr, X_te, 0, epochs=1)
    assert f_tr.shape == (40, zc.K) and f_te.shape == (6, zc.K)
    np.testing.assert_allclose(f_te.sum(1), 1.0, rtol=1e-6)
    assert zc.runs_on("lda", "counts") and not zc.runs_on("lda", "raw")
    assert "lda" in zc.NO_NETWORK  # its rows and label state no epochs
    with pytest.raises(ValueError, match="non-negative"):
        zc.fit_model("lda", X_tr - 5, X_te, 0, epochs=1)


# =======================================================================================
# sparse_vae_synthetic, oivae_mocap
def test_sparse_vae_synthetic_held_out_data_is_a_different_draw(monkeypatch):
    sv = load("sparse_vae_synthetic", monkeypatch)
    calls = []

    def fake(n, rho, seed):
        calls.append((n, rho, seed))
        if len(calls) == 2:
            raise RuntimeError("stop before the fit")

    monkeypatch.setattr(sv, "make_sparse_vae_data", fake)
    with pytest.raises(RuntimeError, match="stop before the fit"):
        sv.run_one("vae", 0.5, 3, epochs=1, n=200)
    assert calls == [(200, 0.5, 3), (1000, 0.5, 10_003)]


def test_sparse_vae_synthetic_summary_by_hand(monkeypatch, tmp_path):
    sv = load("sparse_vae_synthetic", monkeypatch)
    for seed, (mse, rec) in enumerate([(1.0, 2), (3.0, 1), (2.0, 0)]):
        row = dict.fromkeys(sv.FIELDS, "nan")
        row.update(model="vae", rho=0.0, seed=seed, mse=mse, nll=1.0, dci=1.0)
        row.update(recovered=rec, active_columns=2)
        sv.save_run(tmp_path / "runs.csv", row)
    line = sv.summarize(tmp_path).splitlines()[2]
    # population sd (np.nanstd), as in the published table; recovered = both factors
    assert line.startswith("| 0 | VAE | 3 | 2.000 (0.816) |")
    assert "| 1/3 | 3/3 (min 2, max 2) | - |" in line


def test_oivae_mocap_mean_sd_and_wins_by_hand(monkeypatch, tmp_path):
    om = load("oivae_mocap", monkeypatch)
    assert om.mean_sd([1.0, 2.0, 4.0]) == "2.3 ± 1.5"  # ddof = 1
    rows = [
        {"model": m, "n_train": 1, "seed": s, "test_loglik": ll, "train_loglik": 0.0}
        | {"train_frames": 10, "fit_s": 1.0, "zero_cells": 0, "unused_latents": 0}
        for m, s, ll in [("oi-VAE", 0, 5.0), ("VAE", 0, 5.0), ("oi-VAE", 1, 7.0), ("VAE", 1, 6.0)]
    ]
    args = SimpleNamespace(latent_dim=2, is_samples=3, steps=4, p=1, lam=1.0, long_epochs=0)
    om.write_tables(rows, tmp_path, [1], [0, 1], list(om.MODELS), [], args)
    # a tie is not a win: oi-VAE above VAE on seed 1 only
    assert "| oi-VAE above VAE (seeds) | 1 / 2 |" in (tmp_path / "table.md").read_text()


@pytest.fixture(scope="module")
def mocap():
    pytest.importorskip("pybullet_data")
    from pyro_gfa.data.mocap import load_mocap

    return load_mocap()


def test_oivae_mocap_trains_on_the_first_n_clips_of_a_seeded_order(mocap, monkeypatch, tmp_path):
    import dataclasses

    om = load("oivae_mocap", monkeypatch)
    walk = mocap.clip_names.index("walk")
    # the test clip's values reach beyond every other clip's: were it in the scaling, the
    # training inputs would change
    frames = mocap.frames.copy()
    frames[mocap.clip == walk] = 3 * frames[mocap.clip == walk] + 5
    mocap = dataclasses.replace(mocap, frames=frames)
    monkeypatch.setattr(om, "load_mocap", lambda: mocap)
    fits = []

    class Fake:
        def fit(self, X, **kw):
            fits.append(X)

        def loadings(self):
            return np.ones((13, 2))

        def log_likelihood(self, X, num_samples):
            return np.zeros(len(X))

    monkeypatch.setattr(om, "build", lambda *a: Fake())
    monkeypatch.setattr(om, "write_tables", lambda *a: None)
    argv = ["--n-train", "2,5", "--seeds", "0,1", "--steps", "1", "--long-epochs", "0"]
    rows = om.main([*argv, "--models", "VAE", "--latent-dim", "2", "--out", str(tmp_path)])
    clips = {(r["seed"], r["n_train"]): r["clips"].split("+") for r in rows}
    assert clips[0, 2] == clips[0, 5][:2] and clips[1, 2] == clips[1, 5][:2]  # nested
    assert clips[0, 5] != clips[1, 5]  # the order changes with the seed
    others = mocap.frames[mocap.clip != walk]
    lo = others.min(0)
    span = np.maximum(others.max(0) - lo, 0.1)
    for r, X in zip(rows, fits):
        assert "walk" not in r["clips"] and len(clips[r["seed"], r["n_train"]]) == r["n_train"]
        idx = [mocap.clip_names.index(c) for c in clips[r["seed"], r["n_train"]]]
        # the listed clips' frames, scaled by the 14 non-test clips' minimum and range
        frames = np.concatenate([mocap.frames[mocap.clip == i] for i in idx])
        np.testing.assert_allclose(X, (frames - lo) / span, rtol=1e-5, atol=1e-6)
