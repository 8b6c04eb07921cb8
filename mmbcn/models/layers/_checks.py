"""Argument checks shared by the layers: one clear error each."""
from torch import Tensor


def check_num_features(owner: str, num_features) -> None:
    if not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f'{owner}: num_features={num_features!r} is not '
                         'valid; it must be a positive int')


def check_num_groups(owner: str, num_features: int, num_groups) -> None:
    """``num_groups`` must be a positive int dividing ``num_features``."""
    if not isinstance(num_groups, int) or num_groups < 1 or \
            num_features % num_groups:
        divisors = [d for d in range(1, num_features + 1)
                    if num_features % d == 0]
        raise ValueError(
            f'{owner}: num_groups={num_groups!r} does not divide '
            f'num_features={num_features}; valid values are the divisors '
            f'of {num_features}: {divisors}')


def check_input(owner: str, x: Tensor, num_features: int) -> None:
    """An input must be (N, num_features, *). (TorchScript compiles it as
    well: the scripted layers check their input with it.)"""
    if x.dim() < 2 or x.shape[1] != num_features:
        shape = ', '.join([str(s) for s in x.shape])
        raise ValueError(f'{owner}: input of shape ({shape}) is not '
                         f'valid; expected (N, {num_features}, *)')
