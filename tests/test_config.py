"""The config: tf-faster-rcnn defaults, checked YAML / --set merges, output folders."""
import numpy as np
import pytest

from faster_rcnn import config as C
from faster_rcnn.config import ConfigError, cfg, cfg_from_file, cfg_from_list, reset_cfg


@pytest.fixture(autouse=True)
def _restore():
    reset_cfg()
    yield
    reset_cfg()


def test_reference_defaults():
    assert cfg.TRAIN.LEARNING_RATE == 0.001 and cfg.TRAIN.MOMENTUM == 0.9
    assert cfg.TRAIN.WEIGHT_DECAY == 0.0001 and cfg.TRAIN.GAMMA == 0.1
    assert cfg.TRAIN.BATCH_SIZE == 128 and cfg.TRAIN.FG_FRACTION == 0.25
    assert cfg.TRAIN.RPN_PRE_NMS_TOP_N == 12000 and cfg.TRAIN.RPN_POST_NMS_TOP_N == 2000
    assert cfg.TEST.RPN_PRE_NMS_TOP_N == 6000 and cfg.TEST.RPN_POST_NMS_TOP_N == 300
    assert cfg.TEST.NMS == 0.3 and cfg.TEST.MODE == 'nms' and cfg.TEST.RPN_TOP_N == 5000
    assert cfg.TRAIN.BBOX_NORMALIZE_STDS == (0.1, 0.1, 0.2, 0.2)
    assert cfg.RESNET.FIXED_BLOCKS == 1 and cfg.MOBILENET.FIXED_LAYERS == 5
    assert cfg.POOLING_MODE == 'crop' and cfg.ANCHOR_SCALES == [8, 16, 32]
    np.testing.assert_allclose(cfg.PIXEL_MEANS.ravel(), [102.9801, 115.9465, 122.7717])


def test_yaml_merge_and_list_for_tuple(tmp_path):
    f = tmp_path / 'exp.yml'
    f.write_text('EXP_DIR: myexp\nTRAIN:\n  SCALES: [400, 500]\n  LEARNING_RATE: 1\n'
                 'PIXEL_MEANS: [[[1, 2, 3]]]\n')
    cfg_from_file(str(f))
    assert cfg.EXP_DIR == 'myexp'
    assert cfg.TRAIN.SCALES == (400, 500)            # a list where the default is a tuple is fine
    assert cfg.TRAIN.LEARNING_RATE == 1.0 and isinstance(cfg.TRAIN.LEARNING_RATE, float)  # int for float
    assert cfg.PIXEL_MEANS.shape == (1, 1, 3) and cfg.PIXEL_MEANS[0, 0, 2] == 3


def test_yaml_unknown_key_names_file_and_key(tmp_path):
    f = tmp_path / 'bad.yml'
    f.write_text('TRAIN:\n  LEARNIN_RATE: 0.1\n')
    with pytest.raises(ConfigError, match=r'bad\.yml.*TRAIN\.LEARNIN_RATE'):
        cfg_from_file(str(f))


def test_yaml_wrong_type_names_key_and_type(tmp_path):
    f = tmp_path / 'bad.yml'
    f.write_text('TRAIN:\n  BATCH_SIZE: many\n')
    with pytest.raises(ConfigError, match=r'TRAIN\.BATCH_SIZE: expected int'):
        cfg_from_file(str(f))


def test_yaml_is_safe_loaded(tmp_path):
    f = tmp_path / 'evil.yml'
    f.write_text('EXP_DIR: !!python/object/apply:os.system ["echo hacked"]\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        cfg_from_file(str(f))


def test_set_pairs():
    cfg_from_list(['TRAIN.SCALES', '[500]', 'POOLING_MODE', 'align', 'TRAIN.USE_FLIPPED', 'False',
                   'TRAIN.STEPSIZE', '[50000]', 'ANCHOR_SCALES', '[4,8,16,32]'])
    assert cfg.TRAIN.SCALES == (500,) and cfg.POOLING_MODE == 'align'
    assert cfg.TRAIN.USE_FLIPPED is False and cfg.TRAIN.STEPSIZE == [50000]
    assert cfg.ANCHOR_SCALES == [4, 8, 16, 32]


@pytest.mark.parametrize('pairs, message', [
    (['TRAIN.NOPE', '1'], 'unknown config key TRAIN.NOPE'),
    (['NOPE.KEY', '1'], 'unknown config key NOPE'),
    (['TRAIN.BATCH_SIZE', '0.5'], 'TRAIN.BATCH_SIZE: expected int, got float'),
    (['TRAIN.USE_FLIPPED', '1'], 'TRAIN.USE_FLIPPED: expected bool'),
    (['TRAIN.SCALES', '["a"]'], r'TRAIN.SCALES\[0\]: expected int'),
    (['TRAIN', '1'], 'is a section'),
    (['TRAIN.SCALES'], 'odd number'),
])
def test_set_errors(pairs, message):
    with pytest.raises(ConfigError, match=message):
        cfg_from_list(pairs)


def test_output_dirs(tmp_path):
    cfg.ROOT_DIR = str(tmp_path)
    cfg.EXP_DIR = 'vgg16'
    out = C.get_output_dir('voc_2007_trainval')
    assert out == str(tmp_path / 'output' / 'vgg16' / 'voc_2007_trainval' / 'default')
    tb = C.get_output_tb_dir('voc_2007_trainval', tag='t1')
    assert tb == str(tmp_path / 'tensorboard' / 'vgg16' / 'voc_2007_trainval' / 't1')
    assert (tmp_path / 'output' / 'vgg16' / 'voc_2007_trainval' / 'default').is_dir()


def test_float_anchor_lists_accepted_as_the_reference_did(tmp_path):
    """tf-faster-rcnn took any numbers for ANCHOR_SCALES / ANCHOR_RATIOS; fractional scales must pass."""
    cfg_from_list(['ANCHOR_SCALES', '[0.5,1,2]', 'ANCHOR_RATIOS', '[1]'])
    assert cfg.ANCHOR_SCALES == [0.5, 1.0, 2.0] and cfg.ANCHOR_RATIOS == [1.0]
    f = tmp_path / 'frac.yml'
    f.write_text('ANCHOR_SCALES: [2, 4.5]\nANCHOR_RATIOS: [0.25, 1, 4]\n')
    cfg_from_file(str(f))
    assert cfg.ANCHOR_SCALES == [2.0, 4.5] and all(isinstance(s, float) for s in cfg.ANCHOR_SCALES)
    from faster_rcnn.layers.anchors import generate_anchors
    # ratio 1, base 16: a 16 x 16 box centred at 7.5; scale 2 gives 32 x 32 (7.5 -+ 15.5), 4.5 gives 72 x 72
    anchors = generate_anchors(16, [1.0], cfg.ANCHOR_SCALES)
    np.testing.assert_allclose(anchors, [[-8.0, -8.0, 23.0, 23.0], [-28.0, -28.0, 43.0, 43.0]])
    with pytest.raises(ConfigError, match=r'ANCHOR_SCALES\[1\]: expected float'):
        cfg_from_list(['ANCHOR_SCALES', '[1, "big"]'])
