import pytest
import torch

from artnet import create_model
from artnet.engine.config import SolverConfig
from artnet.engine.solver import build_optimizer, learning_rate, parameter_groups, set_learning_rate
from artnet.engine.train import BatchPlan
from artnet.errors import ConfigError


def test_kinetics_schedule_is_upstream_multistep():
    solver = SolverConfig()
    lrs = {it: learning_rate(it, solver) for it in (0, 69_999, 70_000, 139_999, 140_000, 180_000, 220_000, 249_999)}
    assert lrs[0] == lrs[69_999] == pytest.approx(0.1)
    assert lrs[70_000] == pytest.approx(0.01) and lrs[139_999] == pytest.approx(0.01)
    assert lrs[140_000] == pytest.approx(1e-3) and lrs[180_000] == pytest.approx(1e-4)
    assert lrs[220_000] == lrs[249_999] == pytest.approx(1e-5)


def test_finetune_step_schedule_and_warmup():
    ucf = SolverConfig(base_lr=0.001, lr_policy="step", lr_stepsize=1500, max_iter=3500)
    assert [learning_rate(i, ucf) for i in (0, 1499, 1500, 3000, 3499)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5, 1e-5])
    warm = SolverConfig(base_lr=0.1, warmup_iters=10, warmup_factor=0.1, lr_steps=[])
    assert learning_rate(0, warm) == pytest.approx(0.01) and learning_rate(5, warm) == pytest.approx(0.055)
    assert learning_rate(10, warm) == pytest.approx(0.1)
    scaled = SolverConfig(base_lr=0.1, batch_size=56, reference_batch=224, lr_steps=[])
    assert learning_rate(0, scaled) == pytest.approx(0.025)
    with pytest.raises(ConfigError):
        learning_rate(0, SolverConfig(lr_policy="cosine"))


def test_parameter_groups_follow_the_prototxt_multipliers():
    model = create_model("artnet_r18_d", width_mult=0.125, depths=(1, 1, 1, 1), num_classes=3)
    groups = {g["name"]: g for g in parameter_groups(model, SolverConfig())}
    weights = {id(p) for p in groups["weights"]["params"]}
    assert id(model.fc.weight) in weights and id(model.layer2[0].conv_a.weight) in weights
    assert groups["weights"]["weight_decay"] == 5e-4 and groups["weights"]["lr_mult"] == 1
    assert {id(model.fc.bias), id(model.layer2[0].shortcut.bias)} <= {id(p) for p in groups["biases"]["params"]}
    assert groups["biases"]["weight_decay"] == 0 and groups["biases"]["lr_mult"] == 2
    assert id(model.norm.weight) in {id(p) for p in groups["batchnorm"]["params"]}
    assert groups["batchnorm"]["weight_decay"] == 0
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len(list(model.parameters()))


def test_caffe_momentum_matches_caffe_update_across_an_lr_step():
    """Caffe: v = mu v + lr (g + wd w); w -= v. Run both forms on the same gradients."""
    torch.manual_seed(0)
    solver = SolverConfig(base_lr=0.1, lr_steps=[3], gamma=0.1, weight_decay=0.0, bias_lr_mult=1.0)
    param = torch.nn.Parameter(torch.randn(5))
    model = torch.nn.Module()
    model.register_parameter("weight", param)
    optimizer = build_optimizer(model, solver)
    caffe_w, caffe_v = param.detach().clone(), torch.zeros(5)
    for iteration in range(6):
        grad = torch.randn(5)
        lr = learning_rate(iteration, solver)
        set_learning_rate(optimizer, lr, caffe_momentum=True)
        param.grad = grad.clone()
        optimizer.step()
        caffe_v = 0.9 * caffe_v + lr * grad
        caffe_w = caffe_w - caffe_v
    torch.testing.assert_close(param.detach(), caffe_w)


@pytest.mark.parametrize(
    "global_batch, world, limit, expected",
    [(224, 8, 0, (28, 1, 28)), (224, 1, 28, (224, 8, 28)), (256, 2, 48, (128, 4, 32)), (120, 1, 0, (120, 1, 120)), (6, 1, 4, (6, 2, 3))],
)
def test_batch_plan_splits_the_recipe_batch(global_batch, world, limit, expected):
    plan = BatchPlan.make(global_batch, world, limit)
    assert (plan.per_process, plan.accumulation, plan.micro_batch) == expected
    assert plan.micro_batch * plan.accumulation * world == global_batch


def test_batch_that_does_not_split_is_an_error():
    with pytest.raises(ConfigError, match="does not split over 3"):
        BatchPlan.make(224, 3)
