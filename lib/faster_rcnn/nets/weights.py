"""ImageNet initialisation from torchvision's published classification weights.

A backbone keeps torchvision's attribute names, so a torchvision state_dict fits it key for key once the
classifier keys it does not use are set aside. Loading is strict: any other missing or unexpected key, or
a shape that differs, is an error naming the file.

Where the files are looked for, in order:
  1. ``data/imagenet_weights/<vgg16|res50|res101|res152|mobile>.pth`` (what fetch_imagenet_weights.py writes);
  2. torchvision's cache, ``torch.hub.get_dir()/checkpoints/<torchvision's file name>``
     (e.g. ``vgg16-397923af.pth``), where ``torchvision.models.vgg16(weights=...)`` downloads to.
"""
from __future__ import annotations

import os.path as osp
from typing import cast

import torch
from torch import nn

from ..errors import CheckpointError, ModelFileError, UsageError
from ..model_file import load_model_file
from ..paths import default_data_dir
from .registry import TABLE

IMAGENET_NETS = tuple(name for name, s in TABLE.items() if s.imagenet is not None)


def default_weights_dir(data_dir: str | None = None) -> str:
    """``<data dir>/imagenet_weights`` (``data_dir`` default: FRCNN_DATA_DIR or the checkout's data/)."""
    return osp.join(data_dir or default_data_dir(), 'imagenet_weights')


def imagenet_url(net: str) -> str:
    """URL of torchvision's published ImageNet weights for ``net`` (its file name carries a hash prefix)."""
    if net not in IMAGENET_NETS:
        if net in TABLE:
            raise ValueError(f'the {net!r} network has no ImageNet weights: it is trained from scratch or from a '
                             'detector')
        raise ValueError(f'no ImageNet weights known for network {net!r}: expected one of {list(IMAGENET_NETS)}')
    import torchvision.models as tvm
    imagenet = TABLE[net].imagenet
    assert imagenet is not None  # every net of IMAGENET_NETS has one
    enum_name, member = imagenet
    return getattr(getattr(tvm, enum_name), member).url


def candidate_paths(net: str, weights_dir: str | None = None) -> list[str]:
    """The files ``find_imagenet_weights`` tries for ``net``, in order."""
    weights_dir = weights_dir or default_weights_dir()
    cache = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(imagenet_url(net)))
    # Networks that start from the same torchvision weights (res101_butd and res101) share each other's file.
    sharing = [n for n in IMAGENET_NETS if n != net and TABLE[n].imagenet == TABLE[net].imagenet]
    return [osp.join(weights_dir, f'{n}.pth') for n in [net, *sharing]] + [cache]


def find_imagenet_weights(net: str, weights_dir: str | None = None) -> str:
    """Path of an ImageNet weight file for ``net``; a ModelFileError saying how to get one if none exists."""
    paths = candidate_paths(net, weights_dir)
    for p in paths:
        if osp.isfile(p):
            return p
    raise ModelFileError(
        f'no ImageNet weights for {net}: looked for {" and ".join(paths)}. Run '
        f'`python data/scripts/fetch_imagenet_weights.py --net {net}`, or download {imagenet_url(net)} by hand '
        f'and save it as {paths[0]}.')


def _backbone_of(model: nn.Module) -> nn.Module:
    model = getattr(model, 'module', model)  # DistributedDataParallel
    return getattr(model, 'backbone', model)


def load_imagenet_weights(model: nn.Module, path: str) -> None:
    """Copy the torchvision ImageNet state_dict in ``path`` into ``model``'s backbone, strictly.

    ``model`` is a FasterRCNN (or a backbone). Keys the backbone does not use by design (the ImageNet
    classifier) are dropped; any other mismatch raises ValueError listing the missing and unexpected keys
    and the file. New layers (RPN, R-CNN predictors) keep their initialisation.
    """
    backbone = _backbone_of(model)
    net = getattr(backbone, 'imagenet_name', None)
    if net is None:
        raise UsageError(f'--weight {path}: {type(backbone).__name__} has no ImageNet weights (it is trained from '
                         'scratch); leave --weight out')
    if not osp.isfile(path):
        raise ModelFileError(f'ImageNet weight file {path} does not exist: run `python '
                             f'data/scripts/fetch_imagenet_weights.py --net {net}` '
                             '(see data/imagenet_weights/README.md)')
    try:
        state = load_model_file(path)
    except CheckpointError as e:
        raise ModelFileError(f'ImageNet weight file {str(e).split("checkpoint ", 1)[-1]}') from None
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f'{path} is not a torchvision state_dict (a flat mapping of names to tensors): is it a '
                             'detector file? start from it with --finetune instead of --weight')
    unused = tuple(cast('tuple[str, ...]', backbone.imagenet_unused_prefixes))
    state = {k: v for k, v in state.items() if not k.startswith(unused)}

    own = backbone.state_dict()
    # Old torchvision files predate BatchNorm's num_batches_tracked counter; it carries no information.
    missing = sorted(k for k in own if k not in state and not k.endswith('num_batches_tracked'))
    # FrozenBatchNorm2d (the ResNet and MobileNet norms) has no such counter: the file's is dropped.
    state = {k: v for k, v in state.items() if k in own or not k.endswith('num_batches_tracked')}
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
                        for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise ModelFileError(
            f'{path} does not fit the {net} backbone ({type(backbone).__name__}); is it torchvision\'s {net} '
            f'ImageNet file ({osp.basename(imagenet_url(net))})?\n'
            f'  missing keys ({len(missing)}): {missing[:20]}{" ..." if len(missing) > 20 else ""}\n'
            f'  unexpected keys ({len(unexpected)}): {unexpected[:20]}{" ..." if len(unexpected) > 20 else ""}\n'
            f'  shape mismatches ({len(mismatched)}): {mismatched[:20]}')
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
