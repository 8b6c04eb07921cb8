"""Shim: ``CheckpointHook`` removes an old checkpoint only after the new one
is complete.

mmengine 0.10.7's ``CheckpointHook._save_checkpoint_with_step`` deletes the
oldest checkpoint (``max_keep_ckpts``) *before* writing the new one, and
``_save_best_checkpoint`` deletes the previous best the same way. A run
killed in between has lost its only checkpoint (the shapes configs keep
one), ``last_checkpoint`` names a file that is gone, and ``--resume`` fails.
Two more gaps in the same method: ``last_checkpoint`` is written in place
(a kill leaves it empty), and a Ctrl-C while the config is formatted for the
checkpoint's meta ends as ``SyntaxError: Failed to format the config file``
(``Config.pretty_text`` turns every exception, KeyboardInterrupt too, into
one).

:class:`CheckpointHook` here is mmengine's with the order fixed: write the
new checkpoint, then ``last_checkpoint`` (all-or-nothing, see
:mod:`.atomic_io`), then remove what ``max_keep_ckpts`` / ``save_best`` let
go. It is registered under mmengine's name in mmengine's ``HOOKS`` (the
registry mmdet's and mmseg's inherit), so every config's
``type='CheckpointHook'`` builds it. Applied on ``import mmbcn``.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook as _MMEngineCheckpointHook
from mmengine.registry import HOOKS

from .atomic_io import atomic_write


class _DeferredRemoval:
    """Stands in for a hook's file backend while it saves: ``remove`` and
    ``rmtree`` are recorded, everything else is the backend's."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def remove(self, path):
        self.pending.append(('remove', path))

    def rmtree(self, path):
        self.pending.append(('rmtree', path))

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def apply(self) -> None:
        for how, path in self.pending:
            if how == 'remove' and self._backend.isfile(path):
                self._backend.remove(path)
            elif how == 'rmtree' and self._backend.isdir(path):
                self._backend.rmtree(path)
        self.pending = []


def _interrupted(err: SyntaxError):
    """The KeyboardInterrupt a ``Config.pretty_text`` SyntaxError hides."""
    cause = err.__context__
    return cause if isinstance(cause, KeyboardInterrupt) else None


@HOOKS.register_module(name='CheckpointHook', force=True)
class CheckpointHook(_MMEngineCheckpointHook):
    """mmengine's ``CheckpointHook``; old checkpoints are removed only after
    the new one and ``last_checkpoint`` are written (see the module
    docstring)."""

    def _save_with_deferred_removal(self, save, *args):
        backend = self.file_backend
        self.file_backend = deferred = _DeferredRemoval(backend)
        try:
            save(*args)
        except SyntaxError as err:
            interrupt = _interrupted(err)
            if interrupt is not None:
                raise interrupt from None
            raise
        finally:
            self.file_backend = backend
        deferred.apply()  # only once the new checkpoint is complete

    def _save_checkpoint_with_step(self, runner, step, meta):
        self._save_with_deferred_removal(self._save_then_point, runner,
                                         step, meta)

    def _save_then_point(self, runner, step, meta):
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                old = self.keep_ckpt_ids.popleft()
                if is_main_process():
                    path = self.file_backend.join_path(
                        self.out_dir, self.filename_tmpl.format(old))
                    if self.file_backend.isfile(path):
                        self.file_backend.remove(path)
                    elif self.file_backend.isdir(path):  # deepspeed
                        self.file_backend.rmtree(path)
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if is_main_process():
            atomic_write(str(self.last_ckpt).encode(),
                         osp.join(runner.work_dir, 'last_checkpoint'))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        self._save_with_deferred_removal(super()._save_best_checkpoint,
                                         runner, metrics)


__all__ = ['CheckpointHook']
