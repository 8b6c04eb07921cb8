"""Crafted checkpoints for the loader's security tests: genuine torch.save
files with hand-written pickle instructions spliced in, the way an attacker
would write them.

Each payload, when run, creates ``marker`` (a path): a test asserts the
file is refused and the marker was never created.
"""
import pickle
import struct
import types

import torch

_MEMO = 9000  # memo slots far above those the pickler itself uses


def _str(text: str) -> bytes:
    data = text.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def _put(i: int) -> bytes:
    return b'r' + struct.pack('<I', _MEMO + i)


def _get(i: int) -> bytes:
    return b'j' + struct.pack('<I', _MEMO + i)


def _global(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _eval_via_getattr() -> bytes:
    """Leaves ``eval`` on the stack: getattr(getattr(getattr, '__self__'),
    'eval')."""
    return (_global('builtins', 'getattr') + _put(0) +
            _get(0) + _get(0) + _str('__self__') + b'\x86R' +
            _str('eval') + b'\x86R')


def code(marker: str) -> str:
    """Python that creates ``marker`` and evaluates to a tensor."""
    return (f"__import__('pathlib').Path({str(marker)!r}).touch() or "
            "__import__('torch').zeros(1)")


def rebuild_payload(marker: str) -> bytes:
    """torch's allow-listed ``_rebuild_from_type_v2(eval, Tensor,
    (code,), {})``: runs the code, loads as a tensor."""
    return (_global('torch._tensor', '_rebuild_from_type_v2') + b'(' +
            _eval_via_getattr() + _global('torch', 'Tensor') +
            _str(code(marker)) + b'\x85' + b'}' + b't' + b'R')


def history_buffer_payload(marker: str) -> bytes:
    """NEWOBJ a HistoryBuffer, BUILD it with ``{'__setstate__': eval}``,
    BUILD again with the code string."""
    return (_global('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + _str('__setstate__') + _eval_via_getattr() +
            b's' + b'b' + _str(code(marker)) + b'b')


def statistics_payload() -> bytes:
    """A HistoryBuffer whose statistics methods are replaced by a foreign
    callable (``print``) for every HistoryBuffer of the process."""
    return (_global('mmengine.logging.history_buffer', 'HistoryBuffer') +
            b')\x81' + b'}' + _str('statistics_methods') + b'}' +
            _str('mean') + _global('builtins', 'print') + b's' + b's' +
            b'b')


class Raw:
    """Written into the pickle as the given instructions."""

    def __init__(self, ops: bytes):
        self.ops = ops


class _Pickler(pickle._Pickler):

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Raw):
            self.write(obj.ops)
            return
        super().save(obj, save_persistent_id)


_MODULE = types.SimpleNamespace(Pickler=_Pickler, __name__='payload_pickle')


def save_with(obj, path) -> None:
    """torch.save ``obj`` (which may hold :class:`Raw` payloads)."""
    torch.save(obj, path, pickle_module=_MODULE)


def splice(genuine: str, out: str, ops: bytes, key: str = 'note') -> None:
    """``genuine`` (a runner checkpoint) with ``meta[key]`` = the payload."""
    checkpoint = torch.load(genuine, map_location='cpu', weights_only=False)
    checkpoint['meta'][key] = Raw(ops)
    save_with(checkpoint, out)
