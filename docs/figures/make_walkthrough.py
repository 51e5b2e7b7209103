"""Draw ``docs/figures/walkthrough_bars.png``, the figure of the README's walkthrough.

The oi-VAE on the bars data at the paper's setting (2,048 images, 625 epochs = 20,000
steps of 64, lam = 1, K = 8, seed 0): the loadings heatmap, the variance of every row
explained per latent, the factor-group graph and test reconstructions. Usage:
``python docs/figures/make_walkthrough.py`` (about a minute on one CPU core).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import pyro_gfa as gfa  # noqa: E402
from pyro_gfa import plots  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    X, _ = gfa.data.make_bars(2048, seed=0)
    X_test, _ = gfa.data.make_bars(2048, seed=1)
    groups = gfa.data.Groups.from_spec(
        {f"row {r}": ix for r, ix in enumerate(gfa.data.bar_groups())}
    )
    model = gfa.OIVAE(groups=groups, latent_dim=8, prior=gfa.priors.GroupLasso(1.0))
    t0 = time.perf_counter()
    model.fit(X, epochs=625, batch_size=64, seed=0, progress=False)
    print(f"fit: {time.perf_counter() - t0:.0f} s")
    print(model.loadings_frame().round(2).to_string())
    print(plots.top_units(model, k=1).to_string())
    print(f"test log-lik per image: {model.log_likelihood(X_test, num_samples=100).mean():.1f}")
    ve = gfa.metrics.variance_explained(model, X_test)
    print("test R^2 per row and latent:")
    print(ve.frame().round(3).to_string())
    off = ve.per_factor[model.loadings() == 0]
    print(f"shares of the {off.size} zero loadings: largest |share| {abs(off).max():g}")

    fig = plt.figure(figsize=(14, 5.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3, 1.3])
    ax = top.subplots(1, 3)
    plots.plot_loadings(model, ax=ax[0], title="oi-VAE loadings on bars (lam = 1)")
    plots.plot_variance_explained(ve, ax=ax[1], order=plots.factor_order(model.loadings()))
    ax[1].set_title("test variance explained")
    plots.plot_factor_graph(model, ax=ax[2])
    plots.plot_reconstructions(model, X_test, n=12, ax=bottom.subplots(), image_shape=(8, 8))
    out = Path(__file__).with_name("walkthrough_bars.png")
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
