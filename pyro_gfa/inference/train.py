"""The training loop: SVI on a model/guide pair with a proximal step on the sparse matrix.

Every parameter except the sparse matrix takes Adam. The sparse matrix takes a plain
(stochastic) gradient step of size ``sparse_lr`` followed by its prior's proximal operator
and closed-form updates (oi-VAE Algorithm 1; Sparse VAE Algorithm 1). Adam on the sparse
matrix would defeat the proximal step: its step length does not scale with the gradient.

The loop works on any ``nn.Module`` that follows the module protocol of
:class:`pyro_gfa.models.base.GFAModule`: ``model(*batch)``/``guide(*batch)`` Pyro callables,
a parameter ``W`` and a :class:`~pyro_gfa.priors.Prior` ``prior``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyro
import torch
from pyro.infer import TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled
from tqdm.auto import tqdm

if TYPE_CHECKING:  # models.base imports this module
    from ..models.base import GFAModule


class ProximalSGD:
    """Proximal stochastic gradient on a module's sparse matrix ``W``.

    ``m <- beta * m + (1 - beta) * grad``, ``W <- prox(W - lr * m)``, then the prior's
    closed-form updates. ``beta = 0`` is the plain proximal SGD of the papers. With a
    minibatch gradient, a cell is set exactly to zero only while its gradient norm stays
    below the prior's rate; the gradient noise of a small batch exceeds that, so cells the
    model does not use hover near zero instead. Averaging the gradient (``beta > 0``, as in
    ProxSGD, Yang et al. 2020) lowers that noise and gives the exact zeros.

    Parameters
    ----------
    module
        A model following the :class:`~pyro_gfa.models.base.GFAModule` protocol: its
        ``W``, ``prior`` and ``prior_weight`` are read at every step.
    lr
        Step size of the gradient step (``> 0``).
    momentum
        Gradient averaging ``beta`` in ``[0, 1)``.
    """

    def __init__(self, module: GFAModule, lr: float, momentum: float = 0.0):
        if lr <= 0 or not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"need sparse_lr > 0 and 0 <= sparse_momentum < 1, got {lr}, {momentum}"
            )
        self.module, self.lr, self.momentum = module, lr, momentum
        self.avg = torch.zeros_like(module.W) if momentum > 0 else None

    @torch.no_grad()
    def step(self) -> None:
        """One proximal step on ``module.W``, in place, after ``loss.backward()``.

        Averages ``W.grad`` into the momentum buffer (when ``momentum > 0``), steps ``W``
        against it (no gradient step when ``W.grad`` is ``None``), applies the prior's
        proximal operator with step ``lr * prior_weight`` (:meth:`~pyro_gfa.priors.Prior.prox`),
        then the prior's closed-form updates (:meth:`~pyro_gfa.priors.Prior.update`).
        """
        W = self.module.W
        if W.grad is not None:
            g = W.grad
            if self.avg is not None:
                g = self.avg.mul_(self.momentum).add_(g, alpha=1.0 - self.momentum)
            W.add_(g, alpha=-self.lr)
        self.module.prior.prox(W, self.lr * self.module.prior_weight)
        self.module.prior.update(W)


def check_loss(module: GFAModule, batch: Sequence[torch.Tensor], rtol: float = 1e-4) -> None:
    """Check that ``module.loss`` equals the Pyro ELBO of ``module.model``/``module.guide``.

    Both are evaluated on the same random draw (the same RNG state); the model and guide
    run under Pyro's validation, so argument and shape errors surface here.

    Parameters
    ----------
    module
        A model following the :class:`~pyro_gfa.models.base.GFAModule` protocol, with a
        plain-torch ``loss``.
    batch
        Row-aligned tensors passed to ``loss``, ``model`` and ``guide``.
    rtol
        Relative tolerance of the comparison (the absolute one is
        ``1e-5 * max(1, |ELBO loss|)``).

    Raises
    ------
    FloatingPointError
        If the loss is not finite.
    RuntimeError
        If the two values disagree.
    """
    state = torch.random.get_rng_state()
    cuda = batch[0].device.type == "cuda"
    cuda_state = torch.cuda.get_rng_state(batch[0].device) if cuda else None
    invalid = None
    with torch.no_grad():
        try:
            with pyro.validation_enabled(True):
                ref = TraceMeanField_ELBO().differentiable_loss(module.model, module.guide, *batch)
        except ValueError as err:  # Pyro's checks of distribution arguments (e.g. NaN)
            invalid, ref = err, torch.tensor(math.nan)
        torch.random.set_rng_state(state)
        if cuda:
            torch.cuda.set_rng_state(cuda_state, batch[0].device)
        try:
            with pyro.validation_enabled(False):  # the first training step validates it
                fast = module.loss(*batch)
        except Exception:
            if invalid is not None:  # Pyro's message names the problem first
                raise invalid from None
            raise
    if not torch.isfinite(fast):
        raise FloatingPointError(
            f"the objective is {fast.item()} at the first step, before any update: the model"
            " as started cannot score these data (columns of a very large scale? standardise"
            " them)"
        ) from invalid
    if invalid is not None:
        raise invalid
    if not torch.allclose(fast, ref, rtol=rtol, atol=1e-5 * max(1.0, abs(ref.item()))):
        raise RuntimeError(
            f"{type(module).__name__}.loss ({fast.item()}) disagrees with the Pyro ELBO of its"
            f" model/guide ({ref.item()}); fit with pyro_elbo=True and report this"
        )


def _snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train(
    module: GFAModule,
    tensors: Sequence[torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    sparse_lr: float = 1e-4,
    sparse_momentum: float = 0.0,
    std_throttle: float = 0.1,
    throttle_epochs: int = 25,
    num_particles: int = 1,
    progress: bool = True,
    callback: Callable[[int, dict], bool] | None = None,
    history: list | None = None,
    pyro_elbo: bool = False,
) -> list[dict]:
    """Fit ``module`` to the row-aligned ``tensors`` by minibatch SVI.

    Parameters
    ----------
    module
        A model following the :class:`~pyro_gfa.models.base.GFAModule` protocol, already
        on the device of ``tensors``. If it has a ``start_epoch(epoch)`` method, that is
        called before every epoch (schedules such as the VSC's prior warm-up).
    tensors
        Tensors with the same number of rows, passed (batch by batch) to model and guide.
    epochs, batch_size
        Passes over the data, and rows per step (the rows are reshuffled every epoch).
    lr
        Adam learning rate of every parameter except ``W``.
    sparse_lr
        Step size of the plain gradient step on ``W``; the proximal threshold is
        ``sparse_lr * prior_weight`` times the prior's rate.
    sparse_momentum
        Gradient averaging of the proximal step (see :class:`ProximalSGD`).
    std_throttle, throttle_epochs
        The posterior standard deviations are multiplied by ``std_throttle`` during the
        first ``throttle_epochs`` epochs (oi-VAE appendix D).
    num_particles
        Samples of z per row in the ELBO estimate.
    progress
        Show a progress bar.
    callback
        Called as ``callback(epoch, record)`` after every epoch; returning ``True`` stops.
    history
        A list to append the per-epoch records to (a fit may continue an earlier one).
    pyro_elbo
        Always use Pyro's ``TraceMeanField_ELBO`` on ``model``/``guide``. By default a
        module's plain-torch ``loss`` (the same objective, checked against the Pyro ELBO
        on the first batch) is used when it has one and ``num_particles == 1``.

    Returns
    -------
    list of dict
        One record per epoch: ``epoch``, ``loss`` (mean negative objective per row,
        penalties included) and ``n_active`` (active cells of ``W``).

    Notes
    -----
    A ``KeyboardInterrupt``, a non-finite loss or parameter (which raise
    ``FloatingPointError``; the loss after the last step is checked too) or any other error
    propagates after putting back the parameters and prior state of the end of the last
    completed epoch (the last record of ``history``), so a fit stopped or failing late keeps
    its earlier progress.
    """
    if epochs < 0 or batch_size <= 0:
        raise ValueError(f"epochs must be >= 0 and batch_size > 0, got {epochs}, {batch_size}")
    history = [] if history is None else history
    n = tensors[0].shape[0]
    W = module.W
    others = [p for p in module.parameters() if p is not W and p.requires_grad]
    # One optimiser over all tensors ("foreach") rather than one per parameter.
    adam = torch.optim.Adam(others, lr=lr, foreach=True) if others else None
    prox_sgd = ProximalSGD(module, sparse_lr, sparse_momentum)
    elbo = TraceMeanField_ELBO(num_particles=num_particles)
    validate = is_validation_enabled()
    fast = pyro_elbo is False and num_particles == 1 and hasattr(module, "loss")
    if fast:
        # The plain-torch loss is checked against the Pyro ELBO once, on the first batch.
        check_loss(module, [t[: min(n, batch_size)] for t in tensors])
    start = len(history)
    bar = tqdm(
        range(start, start + epochs),
        disable=not progress,
        desc=type(module).__name__.removesuffix("Module"),
    )
    module.train()
    step_no = 0
    good = _snapshot(module)  # state at the end of the last completed epoch
    try:
        for epoch in bar:
            module.std_multiplier = std_throttle if epoch < throttle_epochs else 1.0
            if hasattr(module, "start_epoch"):  # per-epoch schedules of the model (warm-ups)
                module.start_epoch(epoch)
            perm = torch.randperm(n, device=tensors[0].device)
            total = torch.zeros((), device=tensors[0].device)
            for b in range(0, n, batch_size):
                idx = perm[b : b + batch_size]
                batch = [t[idx] for t in tensors]
                # Validate distributions on the first step only: validation costs several
                # times the arithmetic of a small model's step.
                with pyro.validation_enabled(step_no == 0 and validate):
                    if fast:
                        loss = module.loss(*batch)
                    else:
                        loss = elbo.differentiable_loss(module.model, module.guide, *batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"the objective became {loss.item()} at epoch {epoch}, step {step_no}"
                    )
                if adam is not None:
                    adam.zero_grad(set_to_none=True)
                W.grad = None
                loss.backward()
                if adam is not None:
                    adam.step()
                prox_sgd.step()
                total += loss.detach() * idx.shape[0]
                step_no += 1
            snap = _snapshot(module)
            if not all(torch.isfinite(t).all() for t in snap.values()):
                raise FloatingPointError(f"a parameter became non-finite in epoch {epoch}")
            if epoch == start + epochs - 1:
                # no later step checks the last one's loss: evaluate it before the callbacks
                # (a checkpoint) see this epoch
                with torch.no_grad(), pyro.validation_enabled(False):
                    batch = [t[: min(n, batch_size)] for t in tensors]
                    model, guide = module.model, module.guide
                    loss = module.loss(*batch) if fast else elbo.loss(model, guide, *batch)
                if not math.isfinite(float(loss)):
                    raise FloatingPointError(
                        f"the objective became {float(loss)} after epoch {epoch}"
                    )
            good = snap
            record = {
                "epoch": epoch,
                "loss": total.item() / n,
                "n_active": int(module.prior.support(W.detach()).sum()),
            }
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4g}", active=record["n_active"])
            if callback is not None and callback(epoch, record):
                break
    except BaseException as err:  # Ctrl-C or any error: back to the last completed epoch
        module.load_state_dict(good)
        if isinstance(err, FloatingPointError):
            kept = "No epoch completed: the model holds the parameters it started from"
            if len(history) > start:
                kept = (
                    "The fit's earlier work is kept: the model holds its parameters of the end"
                    f" of epoch {history[-1]['epoch']}"
                )
            err.add_note(f"{kept} (try a smaller lr or sparse_lr).")
        raise
    finally:
        module.std_multiplier = 1.0
        module.eval()
        bar.close()
    return history
