"""The Hydra edge: schema registration and the ``asr-train`` entry point.

Library code takes plain dataclasses; only this module knows Hydra. ``asr/conf/config.yaml``
extends the registered schema ``train_schema``, so every key is type-checked, and a
config group per component (``model/``, ``features/``, ``optim/``, ``data/``,
``experiment/``) selects presets. A group whose presets have different dataclasses (one
per model architecture) registers each as ``GROUP_schema/NAME``; a preset names its own in
its defaults list (``- /model_schema/ds2@_here_``), so ``model=ds2`` gets ``DS2Config``'s keys.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from asr.utils import one_line  # noqa: F401  (re-exported)

CONF_DIR = Path(__file__).resolve().parent / "conf"  # shipped inside the package (package data)


def _experiment_name() -> str:
    """The chosen ``experiment=`` preset, ``default`` when none is chosen."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("experiment") or "default"


def register_configs(schema, variants: dict[str, dict[str, type]] | None = None) -> None:
    """Register ``schema`` (a dataclass) as ``train_schema``, and each of ``variants``
    (``{group: {name: dataclass}}``, e.g. ``{"model": {"birnn": BiRNNConfig, "ds2": DS2Config}}``)
    as ``GROUP_schema/NAME``; ``train_schema`` leaves those groups' keys unset for a preset
    to fill with its own dataclass."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import MISSING, OmegaConf

    store = ConfigStore.instance()
    node = OmegaConf.structured(schema)
    for group, classes in (variants or {}).items():
        node[group] = MISSING
        for name, cls in classes.items():
            store.store(group=f"{group}_schema", name=name, node=cls)
    store.store(name="train_schema", node=node)
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


def unknown_keys(cfg, schema) -> list[str]:
    """Keys of the composed ``cfg`` that the ``schema`` dataclass does not have (e.g. from a
    misspelt ``+model.hiden_size=32``), as dotted paths."""
    known = {k for k, _ in _walk_keys(_chosen_schema(cfg, schema))}
    return [k for k, _ in _walk_keys(cfg) if k not in known]


def _chosen_schema(cfg, schema):
    """``schema`` as a config whose top-level nodes have the dataclasses the composed ``cfg``
    chose (``model=ds2``: ``DS2Config``, not the schema's default ``BiRNNConfig``)."""
    import dataclasses

    from omegaconf import OmegaConf

    node = OmegaConf.structured(schema)
    for key in node.keys():
        chosen = OmegaConf.get_type(cfg, key) if key in cfg else None
        if dataclasses.is_dataclass(chosen) and chosen is not OmegaConf.get_type(node, key):
            node[key] = OmegaConf.structured(chosen)
    return node


def _refuse_unknown(cfg, schema) -> None:
    import difflib

    from asr.utils import UserError

    unknown = unknown_keys(cfg, schema)
    if unknown:
        flat = [k for k, _ in _walk_keys(_chosen_schema(cfg, schema))]
        hints = [difflib.get_close_matches(k, flat, n=1) for k in unknown]
        shown = ", ".join(k + (f" (did you mean {h[0]}?)" if h else "") for k, h in zip(unknown, hints))
        raise UserError(f"unknown configuration key {shown}; see the keys with asr-train --cfg job")


def _walk_keys(node, prefix: str = ""):
    from omegaconf import DictConfig

    for key in node.keys():
        value = node[key] if not node._get_node(key)._is_missing() else None
        if isinstance(value, DictConfig):
            yield from _walk_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _job_exp_dir(cfg) -> None:
    """In a sweep (``-m``), each job trains into ``exp_dir/<its swept values>`` (e.g.
    ``exp/demo/model.hidden_size=16``; slashes replaced), so jobs never share a folder and
    re-running the sweep with ``resume=true`` finds each job's own run."""
    import re

    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    swept = {o.get_key_element() for o in OverridesParser.create().parse_overrides(args) if o.is_sweep_override()}
    mine = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") in swept]
    name = re.sub(r"[^\w.,=+-]", "_", ",".join(mine)) or f"job{hc.job.num}"
    cfg.exp_dir = str(Path(cfg.exp_dir) / name)


def hydra_main(task, schema, variants: dict[str, dict[str, type]] | None = None) -> None:
    """Compose the config from ``asr/conf/`` and the command line, convert it to ``schema``
    (a dataclass; ``variants`` as for :func:`register_configs`) and call ``task`` with it.
    A user error ends in one line and exit 2."""
    import hydra

    from asr.utils import UserError, environment_message

    register_configs(schema, variants)

    def run(cfg) -> None:
        try:
            _refuse_unknown(cfg, schema)
            _job_exp_dir(cfg)
            obj = config_to_object(cfg)
            task(obj)
        except (UserError, ValueError, OSError) as e:
            message = environment_message(e) if isinstance(e, OSError) and not isinstance(e, UserError) else one_line(e)
            if message is None:
                raise
            logging.getLogger("asr").error("%s", message)
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    run.__module__ = "asr.train"
    hydra.main(config_path=str(CONF_DIR), config_name="config",
               version_base="1.3")(run)()
