"""Convert the BCN authors' ImageNet BCN+WS ResNet into an mmdet / mmseg
``ResNet`` checkpoint for the 'bcn-ws' scheme (WSConv2d + BCN).

    python tools/model_converters/bcn_ws_resnet_to_mmdet.py SRC DST \
        [--eps-mode {var,std}] [--prefix backbone.] [--update-rate 0.01]

See :mod:`mmbcn.converters.resnet` for the layouts and the WS re-scaling.
"""
import sys

from convert_ws_resnet import main

if __name__ == '__main__':
    sys.exit(main(source='bcn-ws'))
