"""Learning-rate schedules: the lr sequences equal torch's; state dicts resume; ReduceLROnPlateau's rule."""
import math

import numpy as np
import pytest

import minidl
from minidl import optim
from minidl.optim import lr_scheduler
from tests.helpers import torch_or_skip

STEPS = 30
# a metric that improves, plateaus, wobbles inside the threshold, improves again, then plateaus
METRICS = [1.0, 0.8, 0.7, 0.7, 0.7, 0.69995, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5] + [0.5] * 15


def two_group_optimizer(make):
    params = [make(np.zeros(2)), make(np.zeros(3))]
    return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]


def lr_sequence(opt, scheduler, metrics=None):
    """Group lrs after construction and after each of STEPS epochs (an optimizer step, then the schedule)."""
    seq = [[g["lr"] for g in opt.param_groups]]
    for epoch in range(STEPS):
        opt.step()
        scheduler.step(metrics[epoch]) if metrics is not None else scheduler.step()
        seq.append(list(scheduler.get_last_lr()))
        assert seq[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(seq)


SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[4, 10, 10, 21], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=12)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.01)),
    ("LinearLR", dict(start_factor=0.1, total_iters=6)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=20)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LambdaLR", dict(lr_lambda=lambda epoch: min(1.0, (epoch + 1) / 5))),
    ("ReduceLROnPlateau", dict(patience=2)),
    ("ReduceLROnPlateau", dict(patience=1, factor=0.5, cooldown=2, min_lr=[0.02, 0.001])),
    ("ReduceLROnPlateau", dict(mode="max", patience=0, threshold=0.05, threshold_mode="abs")),
]


@pytest.mark.parametrize("name, kwargs", SCHEDULES)
def test_lr_sequence_equals_torch(name, kwargs):
    torch = torch_or_skip()
    metrics = None
    if name == "ReduceLROnPlateau":
        metrics = [-m for m in METRICS] if kwargs.get("mode") == "max" else METRICS
    opt = optim.SGD(two_group_optimizer(minidl.Parameter), lr=0.1)
    ours = lr_sequence(opt, getattr(lr_scheduler, name)(opt, **kwargs), metrics)
    topt = torch.optim.SGD(two_group_optimizer(lambda a: torch.zeros(a.shape, requires_grad=True)), lr=0.1)
    theirs = lr_sequence(topt, getattr(torch.optim.lr_scheduler, name)(topt, **kwargs), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert len(np.unique(ours[:, 0])) > 2  # the schedule did change the lr


def test_closed_forms():
    opt = optim.SGD([minidl.Parameter(np.zeros(1))], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(8):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose(lrs, expected)
    assert lrs[4] == pytest.approx(0.1) and lrs[8] == pytest.approx(1.0)


@pytest.mark.parametrize("name, kwargs", SCHEDULES[:-3] + [SCHEDULES[-2]])
def test_state_dict_resume(name, kwargs):
    metrics = METRICS if name == "ReduceLROnPlateau" else None

    def fresh():
        opt = optim.SGD(two_group_optimizer(minidl.Parameter), lr=0.1)
        return opt, getattr(lr_scheduler, name)(opt, **kwargs)

    def advance(opt, sched, epochs):
        for epoch in epochs:
            opt.step()
            sched.step(metrics[epoch]) if metrics else sched.step()
        return sched.get_last_lr()

    opt, sched = fresh()
    straight = advance(opt, sched, range(20))
    opt, sched = fresh()
    advance(opt, sched, range(11))
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    opt2, sched2 = fresh()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert advance(opt2, sched2, range(11, 20)) == straight


def test_plateau_divides_by_ten_when_the_metric_stalls():
    opt = optim.SGD([minidl.Parameter(np.zeros(1))], lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=2)
    for value in [1.0, 0.9, 0.9, 0.9]:
        sched.step(value)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # 2 bad epochs: still patient
    sched.step(minidl.tensor(0.9))  # third bad epoch; a one-element tensor works too
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("build, message", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), "step_size must be a positive int"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), "factor must be < 1"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="up"), "mode must be 'min' or 'max'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0, 0]), "2 min_lrs for 1 param groups"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), "T_max must be positive"),
    (lambda o: lr_scheduler.StepLR(object(), step_size=2), "expected a minidl Optimizer"),
])
def test_bad_arguments_fail_in_words(build, message):
    opt = optim.SGD([minidl.Parameter(np.zeros(1))], lr=0.1)
    with pytest.raises((ValueError, TypeError), match=message):
        build(opt)
