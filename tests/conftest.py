import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts with an empty param store, validation on and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(True):
        yield
    pyro.clear_param_store()


def pytest_configure(config):
    torch.set_num_threads(1)


@pytest.fixture
def fail_at_step(monkeypatch):
    """``fail_at_step(k, exc)``: the ``k``-th training step (1-based) raises ``exc``, as a
    Ctrl-C (``KeyboardInterrupt``) or an error in the middle of a fit would;
    ``monkeypatch.undo()`` ends it."""
    from pyro_gfa.inference.train import ProximalSGD

    def arm(k, exc):
        real, calls = ProximalSGD.step, [0]

        def step(self):
            calls[0] += 1
            if calls[0] == k:
                raise exc
            return real(self)

        monkeypatch.setattr(ProximalSGD, "step", step)

    return arm


@pytest.fixture(scope="module")
def data():
    """128 bars images of 4 x 4 (16 columns): the data of the fit-contract tests."""
    from pyro_gfa.data import make_bars

    X, _ = make_bars(128, size=4, seed=0)
    return X
