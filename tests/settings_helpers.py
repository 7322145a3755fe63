"""Settings for the tests: a private config (the defaults, a yml, dotted keys) turned into settings objects, so
no test reads or changes the global cfg to build a network."""
from __future__ import annotations

from pathlib import Path

from faster_rcnn.config import Config, load_config, set_key
from faster_rcnn.settings import ModelSettings

REPO = Path(__file__).resolve().parents[1]
SHAPES_CFG = str(REPO / 'experiments' / 'cfgs' / 'shapes.yml')


def config_with(yml: str | None = None, **keys) -> Config:
    """A private config: the defaults, ``yml``, then ``keys`` (dotted names with '__' for '.', e.g.
    ``TRAIN__BATCH_SIZE=256``)."""
    config = load_config(yml)
    for name, value in keys.items():
        set_key(name.replace('__', '.'), value, config)
    return config


def settings_for(net: str, yml: str | None = None, **keys) -> ModelSettings:
    """The ModelSettings of ``net`` under ``config_with(yml, **keys)``."""
    return ModelSettings.from_config(config_with(yml, **keys), net)
