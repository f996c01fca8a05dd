"""The Hydra edge: schema registration and the ``asr-train`` entry point.

Library code takes plain dataclasses; only this module knows Hydra. ``conf/config.yaml``
extends the registered schema ``train_schema``, so every key is type-checked, and a
config group per component (``model/``, ``features/``, ``optim/``, ``data/``,
``experiment/``) selects presets.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def register_configs(schema) -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=schema)


def hydra_main(task, schema) -> None:
    """Compose the config from ``conf/`` and the command line, convert it to ``schema``
    (a dataclass) and call ``task`` with it. A user error ends in one line and exit 2."""
    import hydra
    from omegaconf import OmegaConf

    from asr.utils import UserError

    register_configs(schema)

    def run(cfg) -> None:
        try:
            obj = OmegaConf.to_object(cfg)
            task(obj)
        except (UserError, ValueError) as e:
            logging.getLogger("asr").error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    run.__module__ = "asr.train"
    config_dir = CONF_DIR if CONF_DIR.is_dir() else None
    hydra.main(config_path=str(config_dir) if config_dir else None, config_name="config",
               version_base="1.3")(run)()
