"""Random-number-generator states in checkpoints, so that a resumed run
draws the random numbers an uninterrupted run draws.

mmengine 0.10.7 seeds the generators once, at start, and does not save their
states: a run resumed at iteration k continues with the generators as they
are after seeding and rebuilding, not as they were after iteration k. Every
random choice after that differs from the uninterrupted run (data
augmentation such as ``RandomFlip``, the RPN / RoI samplers' ``randperm``),
and so do the weights and the BCN estimates. The generators' states also
differ between ranks (each rank sees other data), so every rank's state is
needed.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS


def get_rng_state() -> dict:
    """States of Python's, numpy's and torch's global generators (CPU, and
    CUDA when in use), as types a weights-only checkpoint load accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=(kind, torch.from_numpy(keys.astype(np.int64)),
                        int(pos), int(has_gauss), float(gauss)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`get_rng_state`."""
    random.setstate(state['python'])
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos,
                         has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreAfterSkip:
    """Stands in for an iteration-based loop's data iterator on resume: lets
    the loop skip the ``skip`` batches already trained on, then restores the
    generators before the next batch is loaded (the skipped batches' data
    pipeline must not move them) and puts the loop's iterator back."""

    def __init__(self, loop, skip: int, state: dict):
        self.loop, self.inner = loop, loop.dataloader_iterator
        self.skip, self.state = skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return next(self.inner)
        set_rng_state(self.state)
        self.loop.dataloader_iterator = self.inner
        return next(self.inner)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves every rank's generator states in the checkpoints
    (``checkpoint['rng_states']``, one per rank) and restores them on
    resume, right before the first new batch is loaded; validation inside
    training leaves the generators as it found them (a resumed run does not
    repeat the validation of its checkpoint's iteration).

    :func:`mmbcn.apis.build_runner` adds it to every runner. A checkpoint
    written during validation (``save_best``) carries no states; resuming
    from one, or from a checkpoint of another world size, warns and keeps
    the seeded generators.
    """
    priority = 'LOW'  # after_train_*: before CheckpointHook (VERY_LOW)

    def __init__(self):
        self._gathered = None  # ((epoch, iter), states of all ranks)
        self._loaded: Optional[list] = None
        self._before_val: Optional[dict] = None

    @staticmethod
    def _saves_now(runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook saves after this iteration / epoch."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or \
                    hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval,
                                          hook.save_begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval,
                                               hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather(self, runner) -> None:
        # a collective: every rank gets here under the same condition
        self._gathered = ((runner.epoch, runner.iter),
                          all_gather_object(get_rng_state()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._saves_now(runner, by_epoch=False):
            self._gather(runner)

    def after_train_epoch(self, runner) -> None:
        if self._saves_now(runner, by_epoch=True):
            self._gather(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._gathered and self._gathered[0] == (runner.epoch,
                                                    runner.iter):
            checkpoint['rng_states'] = self._gathered[1]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if runner.iter == 0 and runner.epoch == 0:
            return  # a fresh run (or weights loaded with load_from)
        if loaded is None or len(loaded) != get_world_size():
            why = ('has none (written without RNGStateHook, or during '
                   'validation)' if loaded is None else
                   f'has them for {len(loaded)} ranks, this run has '
                   f'{get_world_size()}')
            runner.logger.warning(
                'RNGStateHook: the checkpoint resumed from ' + why + '; '
                'random numbers (augmentation, sampling) differ from an '
                'uninterrupted run from here on')
            return
        state = loaded[get_rank()]
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _RestoreAfterSkip(loop, runner.iter,
                                                         state)
        else:  # epoch-based: resumed at an epoch start, nothing skipped
            set_rng_state(state)

    def before_val(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None
