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

from asr.utils import one_line  # noqa: F401  (re-exported)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _experiment_name() -> str:
    """The chosen ``experiment=`` preset, ``default`` when none is chosen."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("experiment") or "default"


def register_configs(schema) -> None:
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="train_schema", node=schema)
    if not OmegaConf.has_resolver("asr.experiment"):
        OmegaConf.register_new_resolver("asr.experiment", _experiment_name)


def config_to_object(cfg):
    """The composed config as its schema's dataclasses (``OmegaConf.to_object``); an unset
    mandatory key or an invalid value raises a one-line :class:`asr.utils.UserError`
    naming the key (the dataclasses' own checks raise ``ValueError``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from asr.utils import UserError

    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or "a required key"
        raise UserError(f"{key} is not set; pass {key}=... on the command line or choose a preset "
                        "with experiment=NAME (e.g. experiment=demo)") from None
    except OmegaConfBaseException as e:  # e.g. a bad interpolation
        key = getattr(e, "full_key", None)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{key}: {first}" if key else first) from None


def hydra_main(task, schema) -> None:
    """Compose the config from ``conf/`` and the command line, convert it to ``schema``
    (a dataclass) and call ``task`` with it. A user error ends in one line and exit 2."""
    import hydra

    from asr.utils import UserError

    register_configs(schema)

    def run(cfg) -> None:
        try:
            obj = config_to_object(cfg)
            task(obj)
        except (UserError, ValueError) as e:
            message = one_line(e)
            logging.getLogger("asr").error("%s", message)
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    run.__module__ = "asr.train"
    config_dir = CONF_DIR if CONF_DIR.is_dir() else None
    hydra.main(config_path=str(config_dir) if config_dir else None, config_name="config",
               version_base="1.3")(run)()
