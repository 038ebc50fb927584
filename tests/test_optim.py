"""The optimizers and the learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photoclass.config import TrainConfig
from photoclass.models import get_model_entry
from photoclass.training.optim import KerasRMSprop, create_optimizer, lr_at


def keras_rmsprop(w, grads, lr=1e-3, rho=0.9, eps=1e-7, decay=0.0):
    """Keras 3's RMSprop.update_step (and its decoupled weight decay), in numpy."""
    v = np.zeros_like(w)
    for g in grads:
        w = w - w * decay * lr
        v = rho * v + (1 - rho) * g**2
        w = w - lr * g / np.sqrt(v + eps)
    return w


@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_keras_rmsprop_follows_the_keras_update(decay: float) -> None:
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) * scale for scale in (1.0, 1e-3, 10.0)]
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = KerasRMSprop([p], lr=1e-3, weight_decay=decay)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), keras_rmsprop(w0, grads, decay=decay), rtol=1e-12)
    # torch's RMSprop, with eps outside the square root, takes a different first step
    q = torch.nn.Parameter(torch.tensor(w0))
    torch_opt = torch.optim.RMSprop([q], lr=1e-3, alpha=0.9, eps=1e-7)
    q.grad = torch.tensor(grads[1])
    torch_opt.step()
    assert not np.allclose(q.detach().numpy(), keras_rmsprop(w0, grads[1:2]), rtol=1e-9, atol=0)


def test_keras_rmsprop_state_survives_a_state_dict_round_trip() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = KerasRMSprop([p])
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    other = KerasRMSprop([torch.nn.Parameter(p.detach().clone())])
    other.load_state_dict(opt.state_dict())
    assert torch.equal(next(iter(other.state.values()))["square_avg"], 0.1 * p.grad**2)


def test_the_reference_recipe_gets_keras_rmsprop() -> None:
    cfg = TrainConfig(model="seed-cnn").resolve(get_model_entry("seed-cnn").recipe)
    assert isinstance(create_optimizer(cfg, [torch.nn.Parameter(torch.ones(1))]), KerasRMSprop)
    adam = TrainConfig(model="small-cnn").resolve(get_model_entry("small-cnn").recipe)
    assert isinstance(create_optimizer(adam, [torch.nn.Parameter(torch.ones(1))]), torch.optim.AdamW)


def test_one_cycle_warms_up_then_anneals_to_zero() -> None:
    cfg = TrainConfig(model="small-cnn", lr=1.0).resolve(get_model_entry("small-cnn").recipe)
    rates = [lr_at(step, 100, cfg) for step in range(101)]
    assert rates[0] == pytest.approx(0.04) and max(rates) == pytest.approx(1.0)
    assert rates.index(max(rates)) == 20 and rates[-1] == pytest.approx(0.0, abs=1e-12)
    constant = TrainConfig(model="seed-cnn").resolve(get_model_entry("seed-cnn").recipe)
    assert {lr_at(s, 100, constant) for s in range(100)} == {1e-3}
