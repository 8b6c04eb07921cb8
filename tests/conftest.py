import os.path as osp
import sys

# test helpers (tiny_runner.py) live beside the tests
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
