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


def test_settings_chart_groups_schemes_by_setting(tmp_path, monkeypatch):
    """plot_settings: one bar series per setting, in the given order, and
    only the schemes measured under two settings or more."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mmbcn.reports.protocol import plot_settings
    drawn = []
    save = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        ax = fig.axes[0]
        drawn.append(([t.get_text() for t in ax.get_legend().get_texts()],
                      [t.get_text() for t in ax.get_xticklabels()],
                      [round(p.get_height(), 6) for p in ax.patches]))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, 'savefig', keep)

    def rows(**by_scheme):
        return protocol_rows([
            Cell(s, '32 images', det=[run({'bbox mAP': v})] * 2)
            for s, v in by_scheme.items()])

    paths = plot_settings([('lr 0.01', rows(gn=0.1, bn=0.01)),
                           ('lr 0.02', rows(gn=0.2, **{'gn-ws': 0.15}))],
                          str(tmp_path))
    assert paths == [str(tmp_path / 'settings_det.png')]
    (legend, ticks, heights), = drawn
    assert legend == ['lr 0.01', 'lr 0.02']
    assert ticks == ['gn\n32 images']  # bn and gn-ws: one setting each
    assert heights == [0.1, 0.2]
