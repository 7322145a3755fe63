"""What an exported graph says about itself: classes, channel order, network, recorded config, baked settings."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..settings import ModelSettings

FORMAT = 1


def graph_metadata(settings: ModelSettings, classes: Sequence[str], *, net: str, record: dict | None) -> dict:
    """The metadata of an exported ``net`` graph (plain values; ONNX stores them as strings, JSON for non-str)."""
    d = settings.detection
    return {'faster_rcnn_export': str(FORMAT), 'net': net, 'classes': list(classes),
            'channel_order': settings.input.channel_order, 'config': record or {},
            'settings': {'scales': list(settings.input.scales), 'max_size': settings.input.max_size,
                         'pixel_means': list(settings.input.pixel_means),
                         'pixel_stds': list(settings.input.pixel_stds),
                         **dataclasses.asdict(d),
                         'pooling_mode': settings.network.pooling_mode,
                         'anchor_scales': list(settings.network.anchor_scales),
                         'anchor_ratios': list(settings.network.anchor_ratios),
                         'test_proposals': dict(settings.network.test_proposal_kwargs),
                         'test_mode': settings.network.test_mode},
            'exp_dir': str((record or {}).get('exp_dir', net))}
