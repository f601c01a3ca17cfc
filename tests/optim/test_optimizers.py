"""SGD, Adam and AdamW: trajectories equal torch.optim's; state dicts resume exactly; argument checks."""
import numpy as np
import pytest

import minidl
from minidl import nn, optim
from tests.helpers import torch_or_skip

RNG = np.random.default_rng(0)
A = RNG.standard_normal((6, 4))
B = RNG.standard_normal(6)
W0 = RNG.standard_normal(4)
C0 = RNG.standard_normal((2, 3))


def loss_of(w, c, a, b):
    """0.5 |a w - b|^2 + sum(c^4) / 4 + sum(c): a quadratic and a non-quadratic term, two parameters.

    Written once for minidl and torch tensors alike."""
    r = a @ w - b
    return (r * r).sum() * 0.5 + (c ** 4).sum() * 0.25 + c.sum()


def minidl_run(make_opt, steps, params=None, opt=None):
    params = params or [minidl.Parameter(W0.copy()), minidl.Parameter(C0.copy())]
    opt = opt or make_opt(params)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(*params, minidl.Tensor(A), minidl.Tensor(B)).backward()
        opt.step()
    return params, opt


def torch_run(torch, make_opt, steps):
    params = [torch.tensor(W0.copy(), requires_grad=True), torch.tensor(C0.copy(), requires_grad=True)]
    opt = make_opt(params)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(*params, torch.from_numpy(A), torch.from_numpy(B)).backward()
        opt.step()
    return params


CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.1)),
    ("AdamW", dict(lr=0.1, weight_decay=0.5, amsgrad=True)),
]


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_trajectory_equals_torch(name, kwargs):
    torch = torch_or_skip()
    ours, _ = minidl_run(lambda ps: getattr(optim, name)(ps, **kwargs), 10)
    theirs = torch_run(torch, lambda ps: getattr(torch.optim, name)(ps, **kwargs), 10)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-12)
    assert not np.allclose(ours[0].numpy(), W0)  # it moved


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_state_dict_resume_is_exact(name, kwargs):
    make = lambda ps: getattr(optim, name)(ps, **kwargs)  # noqa: E731
    straight, _ = minidl_run(make, 10)
    half, opt = minidl_run(make, 5)
    saved = opt.state_dict()
    fresh_params = [minidl.Parameter(p.numpy().copy()) for p in half]
    fresh = make(fresh_params)
    fresh.load_state_dict(saved)
    resumed, _ = minidl_run(make, 5, params=fresh_params, opt=fresh)
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_layout_and_loaded_copy_is_independent():
    params = [minidl.Parameter(W0.copy()), minidl.Parameter(C0.copy())]
    opt = optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.01}], lr=0.1, momentum=0.9)
    minidl_run(None, 2, params=params, opt=opt)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.01]
    assert set(sd["state"]) == {0, 1} and set(sd["state"][0]) == {"momentum_buffer"}
    other = optim.SGD([{"params": [minidl.Parameter(W0.copy())]}, {"params": [minidl.Parameter(C0.copy())]}],
                      lr=0.5, momentum=0.9)
    other.load_state_dict(sd)
    assert [g["lr"] for g in other.param_groups] == [0.1, 0.01]
    loaded = other.state[other.param_groups[0]["params"][0]]["momentum_buffer"]
    np.testing.assert_array_equal(loaded, sd["state"][0]["momentum_buffer"])
    assert loaded is not sd["state"][0]["momentum_buffer"]
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD(params, lr=0.1).load_state_dict(sd)


def test_load_state_dict_casts_state_to_the_parameter_dtype():
    p64 = [minidl.Parameter(W0.copy()), minidl.Parameter(C0.copy())]
    _, opt = minidl_run(lambda ps: optim.Adam(ps), 3, params=p64)
    p32 = [minidl.Parameter(W0.astype(np.float32)), minidl.Parameter(C0.astype(np.float32))]
    opt32 = optim.Adam(p32)
    opt32.load_state_dict(opt.state_dict())
    assert opt32.state[p32[0]]["exp_avg"].dtype == np.float32 and opt32.state[p32[0]]["step"] == 3


def test_params_without_grad_are_skipped_and_grads_not_mutated():
    used, unused = minidl.Parameter(np.ones(3)), minidl.Parameter(np.ones(3))
    opt = optim.SGD([used, unused], lr=0.1, momentum=0.9, weight_decay=0.1)
    (used * used).sum().backward()
    grad = used.grad.data.copy()
    opt.step()
    opt.step()
    np.testing.assert_array_equal(used.grad.data, grad)
    np.testing.assert_array_equal(unused.numpy(), np.ones(3))
    assert unused not in opt.state


def test_param_groups_and_add_param_group():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.01}],
                    lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["momentum"] == 0.9
    extra = minidl.Parameter(np.zeros(2))
    opt.add_param_group({"params": extra, "momentum": 0.5})
    assert opt.param_groups[2]["params"] == [extra] and opt.param_groups[2]["lr"] == 0.1
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [extra]})
    opt.zero_grad()
    assert "Parameter Group 2" in repr(opt)


@pytest.mark.parametrize("build, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "invalid learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "invalid momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum needs momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "invalid weight_decay"),
    (lambda p: optim.Adam(p, lr=-1), "invalid learning rate"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "invalid betas"),
    (lambda p: optim.AdamW(p, eps=-1), "invalid eps"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD(p[0], lr=0.1), "single Tensor"),
    (lambda p: optim.SGD([p[0] * 2], lr=0.1), "not a leaf"),
    (lambda p: optim.SGD({p[0]}, lr=0.1), "not a set"),
])
def test_bad_arguments_fail_in_words(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build([minidl.Parameter(np.zeros(2))])


def test_step_with_closure_returns_the_loss():
    w = minidl.Parameter(np.array([3.0]))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert w.item() == pytest.approx(1.5)


def test_training_a_linear_model_reduces_the_loss():
    model = nn.Linear(4, 1)
    x = minidl.Tensor(A.astype(np.float32))
    y = minidl.Tensor((A @ W0).astype(np.float32)[:, None])
    opt = optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]
