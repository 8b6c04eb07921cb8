"""Top-1 classification accuracy of the backbone pretraining runs."""
from typing import Sequence

from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module()
class ClsAccuracy(BaseMetric):
    """Top-1 accuracy in percent, logged as ``cls/top1``."""

    default_prefix = 'cls'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                int(sample['pred_label']) == int(sample['gt_label']))

    def compute_metrics(self, results: list) -> dict:
        if not results:
            raise ValueError('ClsAccuracy: no predictions were evaluated')
        return dict(top1=100.0 * sum(results) / len(results))
