"""``build_optimizer(model, settings)``: tf-faster-rcnn's parameter groups on SGD (the reference) or AdamW.

Groups (frozen parameters are left out):
  - weights: lr x 1, weight decay TRAIN.WEIGHT_DECAY (MOBILENET.WEIGHT_DECAY for the MobileNet backbone,
    whose depthwise kernels get none unless MOBILENET.REGU_DEPTH);
  - biases: lr x (2 if TRAIN.DOUBLE_BIAS else 1), weight decay as the weights only if TRAIN.BIAS_DECAY.

Each group carries ``lr_mult``: a scheduler sets ``group['lr'] = base_lr(it) * group['lr_mult']``, which
keeps the doubled bias learning rate through warm-up and decay. ``group['name']`` says which group it is.
"""
from __future__ import annotations

import torch
from torch import nn

from faster_rcnn.settings import OptimizerSettings


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def build_optimizer(model: nn.Module, settings: OptimizerSettings | None = None) -> torch.optim.Optimizer:
    """Optimizer over ``model``'s trainable parameters (``model`` may be wrapped in DDP); ``settings`` default to
    tf-faster-rcnn's (SGD, lr 0.001, momentum 0.9, weight decay 1e-4, doubled bias lr, no bias decay)."""
    net = getattr(model, 'module', model)
    tr = settings or OptimizerSettings()
    base_lr = float(tr.learning_rate)
    bias_mult = 2.0 if tr.double_bias else 1.0
    mobile = getattr(net, 'net_name', '') == 'mobile'
    depthwise = {id(m.weight) for m in net.modules() if _is_depthwise(m)}

    groups: dict[tuple[str, float, float], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        decay = float(tr.weight_decay)
        if mobile and name.startswith('backbone.'):
            decay = float(tr.mobilenet_weight_decay)
            if id(p) in depthwise and not tr.mobilenet_regu_depth:
                decay = 0.0
        if name.endswith('bias'):
            key = ('bias', bias_mult, decay if tr.bias_decay else 0.0)
        else:
            key = ('weight', 1.0, decay)
        groups.setdefault(key, []).append(p)
    if not groups:
        raise ValueError(f'{type(net).__name__} has no trainable parameter to optimise')

    param_groups = [{'params': ps, 'lr': base_lr * mult, 'lr_mult': mult, 'weight_decay': wd,
                     'name': f'{kind} (lr x{mult:g}, decay {wd:g})'}
                    for (kind, mult, wd), ps in groups.items()]
    kind = tr.kind
    if kind == 'sgd':
        return torch.optim.SGD(param_groups, lr=base_lr, momentum=float(tr.momentum))
    if kind == 'adamw':
        return torch.optim.AdamW(param_groups, lr=base_lr)
    raise ValueError(f"config key TRAIN.OPTIMIZER: unknown optimizer {kind!r}, expected 'sgd' or 'adamw'")
