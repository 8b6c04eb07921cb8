"""Paths of the repository for the tests (importable from any test: the
tests folder is on sys.path, see conftest.py)."""
import os.path as osp

TESTS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS)
