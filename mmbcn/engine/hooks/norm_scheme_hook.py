"""Checkpoints record the norm scheme they were trained with; loading one
into a model of another scheme is refused instead of evaluated.

A gn-ws checkpoint tested under the gn config loads without a warning (the
keys are the same, WS has no parameters of its own) and scores less than it
should; a gn checkpoint under the bcn-ws config loads with missing-key
warnings only. Both give a number that looks like a result.
"""
import re
from typing import List, Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm

from ...models.layers import StatsMode
from ...models.layers.norm_types import NORM_TYPES
from ..utils import unwrap_model

#: the config key (and ``tools/test.py`` / ``tools/train.py`` flag
#: ``--allow-scheme-mismatch``) that loads a checkpoint of another scheme
CONFIG_KEY = 'allow_scheme_mismatch'
META_KEY = 'mmbcn'


class SchemeMismatchError(ValueError):
    """A checkpoint trained with another norm scheme than the model's."""


def layer_signature(model: nn.Module) -> List[str]:
    """The sorted class names of the normalization and convolution layers of
    ``model``: what a norm scheme changes. All BatchNorm variants (BN,
    SyncBN, mmengine's converted ones) count as one, 'BatchNorm'."""
    model = unwrap_model(model)
    names = set()
    for module in model.modules():
        if isinstance(module, StatsMode):
            continue  # the norm_eval switch inside BCN / EvoNorm-B0
        if isinstance(module, _BatchNorm):
            names.add('BatchNorm')
        elif isinstance(module, NORM_TYPES) or isinstance(
                module, nn.modules.conv._ConvNd):
            names.add(type(module).__name__)
    return sorted(names)


def scheme_name(cfg) -> Optional[str]:
    scheme = cfg.get('norm_scheme') if cfg is not None else None
    if isinstance(scheme, dict):
        scheme = scheme.get('name')
    return scheme or None


def recorded_scheme(checkpoint: dict) -> Optional[dict]:
    """``dict(norm_scheme, layers)`` a checkpoint records (layers None for
    checkpoints written before the record: the scheme then comes from the
    config text in their meta), or None if it records neither."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return None
    record = meta.get(META_KEY)
    if isinstance(record, dict) and 'layers' in record:
        return dict(norm_scheme=record.get('norm_scheme'),
                    layers=list(record['layers']))
    text = meta.get('cfg')
    if isinstance(text, str):
        match = re.search(r"^norm_scheme\s*=\s*(?:dict\(\s*name\s*=\s*)?"
                          r"['\"]([\w-]+)['\"]", text, re.M)
        if match:
            return dict(norm_scheme=match.group(1), layers=None)
    return None


def _describe(name: Optional[str], layers: Optional[List[str]]) -> str:
    text = f"norm scheme {name!r}" if name else \
        "the config's own norm layers (no norm_scheme)"
    if layers:
        text += f" ({', '.join(layers)})"
    return text


@HOOKS.register_module()
class NormSchemeHook(Hook):
    """Writes ``meta['mmbcn'] = dict(norm_scheme, layers)`` into every
    checkpoint (the scheme's name and :func:`layer_signature`) and compares
    it on every load (``load_from``, ``--resume``, ``tools/test.py``): a
    checkpoint of another scheme is a :class:`SchemeMismatchError` naming
    both, unless
    the config sets ``allow_scheme_mismatch = True`` (not for resuming).
    Checkpoints that record no scheme (pretrained backbones, converted or
    third-party weights) load as before.

    :func:`mmbcn.apis.build_runner` adds it to every runner.
    """
    priority = 'VERY_HIGH'  # before other hooks read the loaded checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta[META_KEY] = dict(norm_scheme=scheme_name(runner.cfg),
                              layers=layer_signature(runner.model))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        record = recorded_scheme(checkpoint)
        if record is None:
            return
        name = scheme_name(runner.cfg)
        layers = layer_signature(runner.model)
        if record['layers'] is not None:
            same = record['layers'] == layers
        else:  # an older checkpoint: only its scheme's name is known
            same = name is None or record['norm_scheme'] == name
        if same:
            return
        theirs = _describe(record['norm_scheme'], record['layers'])
        ours = _describe(name, layers)
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        if getattr(runner, '_resume', False):
            raise SchemeMismatchError(
                f'cannot resume from {source}: it was trained with {theirs}, '
                f'this run builds {ours}; resume with the scheme it was '
                f'trained with (--norm {record["norm_scheme"]}) or start a '
                'new run in another work dir')
        if runner.cfg.get(CONFIG_KEY, False):
            runner.logger.warning(
                f'{source} was trained with {theirs}; loading it into '
                f'{ours} ({CONFIG_KEY}=True)')
            return
        hint = f' (--norm {record["norm_scheme"]})' \
            if record['norm_scheme'] else ''
        raise SchemeMismatchError(
            f'{source} was trained with {theirs}, but this config builds '
            f'{ours}: its results would be wrong. Use the scheme it was '
            f'trained with{hint}, or --allow-scheme-mismatch (config: '
            f'{CONFIG_KEY} = True) to load it anyway')


__all__ = ['NormSchemeHook', 'SchemeMismatchError', 'layer_signature',
           'recorded_scheme', 'scheme_name']
