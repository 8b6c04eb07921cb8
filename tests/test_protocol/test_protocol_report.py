"""The protocol table: mean ± std over seeds per column group, n, and the
bar charts."""
import statistics

from mmbcn.reports.protocol import Cell, plot_protocol, protocol_rows
from mmbcn.reports.results import RunResult


def run(metrics, finished=True):
    result = RunResult(work_dir='w', metrics=dict(metrics), max_iters=10,
                       last_iter=10 if finished else 3)
    return result


def test_rows_are_means_and_stds_of_finished_runs():
    det = [run({'bbox mAP': v, 'segm mAP': v / 2}) for v in (0.1, 0.2, 0.4)]
    seg = [run({'mIoU': v}) for v in (30.0, 34.0, 35.0)]
    cell = Cell('gn', '32 images', pretrain=[run({'top-1 acc': 80.0})],
                det=det + [run({'bbox mAP': 0.9}, finished=False)], seg=seg,
                scratch_det=[run({'bbox mAP': 0.05}),
                             run({'bbox mAP': 0.07})])
    row, = protocol_rows([cell])
    assert row['scheme'] == 'gn' and row['pretraining'] == '32 images'
    assert abs(row['bbox mAP'] - statistics.fmean([0.1, 0.2, 0.4])) < 1e-12
    assert abs(row['bbox mAP std'] - statistics.stdev([0.1, 0.2, 0.4])) \
        < 1e-12
    assert abs(row['segm mAP'] - statistics.fmean([0.05, 0.1, 0.2])) < 1e-12
    assert abs(row['mIoU'] - statistics.fmean([30.0, 34.0, 35.0])) < 1e-12
    assert row['pretrain top-1'] == 80.0 and row['pretrain top-1 std'] is None
    assert abs(row['scratch bbox mAP'] - 0.06) < 1e-12
    assert row['scratch mIoU'] is None
    assert row['n'] == '3, scratch 2'


def test_plots_are_written(tmp_path):
    rows = protocol_rows([
        Cell('bn', '1 image (micro)', det=[run({'bbox mAP': 0.1})] * 2),
        Cell('gn', '32 images', det=[run({'bbox mAP': 0.2})] * 2,
             scratch_det=[run({'bbox mAP': 0.1})] * 2)])
    paths = plot_protocol(rows, str(tmp_path))
    assert paths == [str(tmp_path / 'protocol_det.png')]
    assert (tmp_path / 'protocol_det.png').stat().st_size > 1000


def test_plot_without_scratch_columns_has_one_series(tmp_path, monkeypatch):
    """A --variant table has no from-scratch columns: its charts show the
    fine-tuned bars alone, not an empty "from scratch" series."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    legends = []
    save = plt.Figure.savefig

    def keep_legend(fig, *args, **kwargs):
        legends.append([t.get_text() for t in
                        fig.axes[0].get_legend().get_texts()])
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, 'savefig', keep_legend)
    rows = protocol_rows([
        Cell('gn', '32 images', det=[run({'bbox mAP': 0.2})] * 2),
        Cell('gn-ws', '32 images', det=[run({'bbox mAP': 0.1})] * 2)])
    assert plot_protocol(rows, str(tmp_path)) == [
        str(tmp_path / 'protocol_det.png')]
    assert legends == [['fine-tuned from the pretrained backbone']]
