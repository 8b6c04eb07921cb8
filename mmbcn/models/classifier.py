"""An image classifier around a detector's or segmenter's backbone, for
pretraining it under a normalization scheme (the ImageNet step of the
papers' protocol) so that the checkpoint fine-tunes directly.

    logits = fc(mean_{H,W} backbone(x)[-1])

The backbone is built from its config (``type='mmdet.ResNet'``,
``'mmseg.ResNetV1c'``, ... or the scope's own ``'ResNet'``), so the
checkpoint's ``backbone.*`` keys are the fine-tuning model's backbone keys:
mmengine's ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
in the fine-tuning config loads them.

``micro_batch=m`` runs the backbone on chunks of ``m`` images in training,
so batch statistics (BN, BCN's batch stage) come from ``m`` images, as on
``batch / m`` GPUs with ``m`` images each; the loss is the mean over the
whole batch, so the gradient equals that of data-parallel training over
those GPUs. Running estimates are updated once per chunk, i.e. ``batch /
m`` times per step (each GPU updates its own once; rank 0's are saved).
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module()
class BackboneClassifier(BaseModel):
    """Global average pooling of the last backbone output and a linear
    layer; cross-entropy loss.

    Args:
        backbone: config of the backbone.
        num_classes: number of classes.
        in_channels: channels of the last backbone output (default: the
            backbone's ``feat_dim``, which mmdet's and mmseg's ResNets set).
        micro_batch: images per normalization batch in training (see the
            module docstring); None: the whole batch.
        data_preprocessor: e.g. ``dict(type='ImgDataPreprocessor', mean=...,
            std=..., bgr_to_rgb=True)``.
    """

    def __init__(self, backbone: dict, num_classes: int,
                 in_channels: Optional[int] = None,
                 micro_batch: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if micro_batch is not None and (not isinstance(micro_batch, int) or
                                        micro_batch < 1):
            raise ValueError(f'BackboneClassifier: micro_batch={micro_batch!r}'
                             ' must be a positive int or None')
        self.backbone = MODELS.build(backbone)
        if in_channels is None:
            in_channels = getattr(self.backbone, 'feat_dim', None)
            if in_channels is None:
                raise ValueError(
                    'BackboneClassifier: the backbone has no feat_dim; give '
                    'in_channels (channels of its last output)')
        self.micro_batch = micro_batch
        self.fc = nn.Linear(in_channels, num_classes)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(inputs)
        if isinstance(feats, (list, tuple)):
            feats = feats[-1]
        return self.fc(feats.mean(dim=(2, 3)))

    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            labels = torch.stack([s.gt_label for s in data_samples]).to(
                inputs.device).view(-1)
            return dict(loss=self.loss(inputs, labels))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f'BackboneClassifier: mode={mode!r}; valid modes '
                         "are 'loss', 'predict' and 'tensor'")

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor):
        if self.micro_batch is None or self.micro_batch >= len(inputs):
            return F.cross_entropy(self.logits(inputs), labels)
        total = inputs.new_zeros(())
        for start in range(0, len(inputs), self.micro_batch):
            chunk = slice(start, start + self.micro_batch)
            total = total + F.cross_entropy(self.logits(inputs[chunk]),
                                            labels[chunk], reduction='sum')
        return total / len(inputs)

    def predict(self, inputs: torch.Tensor, data_samples) -> List:
        scores = self.logits(inputs).softmax(dim=1)
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return list(data_samples)
