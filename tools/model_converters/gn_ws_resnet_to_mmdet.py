"""Convert mmdet's GN+WS ImageNet ResNet (open-mmlab://jhu/resnet50_gn_ws,
...; trained with mmcv ConvWS) into an mmdet / mmseg ``ResNet`` checkpoint
for the 'gn-ws' scheme (WSConv2d + GN).

    python tools/model_converters/gn_ws_resnet_to_mmdet.py SRC DST \
        [--eps-mode {var,std}] [--prefix backbone.]

``--eps-mode var`` (default) rescales each filter so mmbcn's default
WSConv2d reproduces ConvWS exactly; ``--eps-mode std`` keeps the weights
unchanged for ``conv_cfg=dict(type='WSConv2d', eps_mode='std')``. See
:mod:`mmbcn.converters.resnet`.
"""
import sys

from convert_ws_resnet import main

if __name__ == '__main__':
    sys.exit(main(source='gn-ws'))
