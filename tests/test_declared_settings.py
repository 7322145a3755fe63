"""Settings declared once as typed fields: a key names its config key, default and check in one place; a bad
value is a ConfigError naming the key when the config becomes settings (not at the first step); an extension's
own key (``settings.declare``) reaches ``TrainSettings.extra`` and, when it is an interval, the schedule scales it."""
from __future__ import annotations

from dataclasses import fields

import pytest

from faster_rcnn import settings as settings_module
from faster_rcnn.config import get_key, new_config, set_key
from faster_rcnn.engine.schedule import apply_schedule, run_schedule
from faster_rcnn.errors import ConfigError
from faster_rcnn.settings import (AnchorTargetSettings, ModelSettings, NetworkSettings, ProposalSettings,
                                  ProposalTargetSettings, TrainSettings, declare, positive)


@pytest.mark.parametrize('cls', [AnchorTargetSettings, ProposalTargetSettings, ProposalSettings])
def test_declared_defaults_are_the_configs(cls):
    """The field default and the config default of each key agree (the layer sees the same either way)."""
    c = new_config()
    for f in fields(cls):
        if 'key' in f.metadata:
            key = f.metadata['key'].replace('{S}', 'TRAIN')
            value = get_key(key, c)
            assert (tuple(value) if isinstance(value, (list, tuple)) else value) == f.default, key


def test_network_settings_give_the_layers_their_keyword_arguments():
    net = NetworkSettings.from_config(new_config())
    assert net.anchor_target_kwargs == dict(rpn_positive_overlap=0.7, rpn_negative_overlap=0.3,
                                            rpn_clobber_positives=False, rpn_batchsize=256, rpn_fg_fraction=0.5,
                                            rpn_positive_weight=-1.0, rpn_bbox_inside_weights=(1.0, 1.0, 1.0, 1.0),
                                            allowed_border=0)
    assert net.train_proposal_kwargs == dict(pre_nms_top_n=12000, post_nms_top_n=2000, nms_thresh=0.7, min_size=0.0)
    assert net.test_proposal_kwargs == dict(pre_nms_top_n=6000, post_nms_top_n=300, nms_thresh=0.7, min_size=0.0)
    assert net.proposal_target_kwargs['batch_size'] == 128 and net.proposal_target_kwargs['use_gt'] is False


@pytest.mark.parametrize('key, value, message', [
    ('TRAIN.RPN_BATCHSIZE', 0, 'config key TRAIN.RPN_BATCHSIZE: 0 is not valid; expected a positive number'),
    ('TRAIN.FG_FRACTION', 1.5, 'config key TRAIN.FG_FRACTION: 1.5 is not valid; expected a number in [0, 1]'),
    ('TEST.RPN_NMS_THRESH', -0.1, 'config key TEST.RPN_NMS_THRESH: -0.1 is not valid'),
    ('TRAIN.BATCH_SIZE', 12.5, 'config key TRAIN.BATCH_SIZE: expected int, got 12.5'),
    ('TRAIN.BBOX_NORMALIZE_STDS', [0.1, 0.2], 'config key TRAIN.BBOX_NORMALIZE_STDS: [(]0.1, 0.2[)] is not valid'),
])
def test_a_bad_layer_value_fails_when_settings_are_made(key, value, message):
    c = new_config()
    c_node = c
    *sections, leaf = key.split('.')
    for part in sections:
        c_node = c_node[part]
    c_node[leaf] = value  # as a yml could say, past the merge's type check
    with pytest.raises(ConfigError, match=message.replace('[0, 1]', r'\[0, 1\]')):
        ModelSettings.from_config(c, 'tiny')


def test_an_extension_key_is_declared_once_and_scaled_as_an_interval(monkeypatch):
    monkeypatch.setattr(settings_module, 'EXTENSIONS', dict(settings_module.EXTENSIONS))
    key = declare('TRAIN.TEST_ONLY_GRAD_NORM_PERIOD', 20, positive, 'a positive number of iterations',
                  interval=True)
    c = new_config()
    assert get_key(key, c) == 20
    set_key(key, 40, c)
    set_key('TRAIN.IMS_PER_BATCH', 2, c)
    train = TrainSettings.from_config(c)
    assert train.extra[key] == 40 and train.intervals()[key] == 40
    given, used = run_schedule(train, 1000, 2, reference_batch=1)
    assert used.intervals[key] == 10 and used.snapshot_iters == 1250  # x 1/4, as SNAPSHOT_ITERS 5000
    scaled = apply_schedule(train, used)
    assert scaled.extra[key] == 10 and scaled.snapshot_iters == 1250 and scaled.display == 3
    set_key(key, 0, c)
    with pytest.raises(ConfigError, match=f'config key {key}: 0 is not valid; expected a positive number'):
        TrainSettings.from_config(c)
    with pytest.raises(ConfigError, match='declared twice'):
        declare(key, 30)
