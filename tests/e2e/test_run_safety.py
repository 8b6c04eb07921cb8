"""tools/train.py and tools/test.py refuse what would lose or falsify
results: crafted or unreadable checkpoints, a checkpoint of another norm
scheme, a second run in one work dir, a run gone non-finite (real runs of
the shapes DeepLabV3, 2 iterations)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

import payloads
from mmbcn.apis.work_dir_lock import work_dir_lock
from test_tools import (SEG_CONFIG, cli_options, data_options, python_tool,
                        run)


@pytest.fixture(scope='module')
def gn_ws_run(tmp_path_factory, shapes_root):
    """2 iterations of the DeepLabV3 config with --norm gn-ws."""
    cwd = tmp_path_factory.mktemp('gn_ws')
    work_dir = cwd / 'work'
    run(python_tool('train.py', SEG_CONFIG, '--norm', 'gn-ws', '--work-dir',
                    work_dir, *cli_options(data_options(SEG_CONFIG,
                                                        shapes_root))), cwd)
    return dict(cwd=cwd, work_dir=work_dir,
                checkpoint=work_dir / 'iter_2.pth')


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines()
             if ln.startswith(('train.py: error:', 'test.py: error:'))]
    assert len(lines) == 1, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    return lines[0]


def test_checkpoint_of_another_scheme_is_refused(gn_ws_run, shapes_root):
    """A gn-ws checkpoint tested under gn (same keys, no warning, lower
    score) or bcn-ws is an error naming both schemes; with its own scheme,
    or with --allow-scheme-mismatch, it is tested."""
    options = cli_options(data_options(SEG_CONFIG, shapes_root))
    for norm in ('gn', 'bcn-ws'):
        code, output = run(python_tool(
            'test.py', SEG_CONFIG, gn_ws_run['checkpoint'], '--norm', norm,
            *options), gn_ws_run['cwd'], check=False)
        assert code == 1
        line = one_line_error(output)
        assert "trained with norm scheme 'gn-ws'" in line
        assert f"builds norm scheme '{norm}'" in line
        assert 'WSConv2d' in line and '--norm gn-ws' in line
        assert '--allow-scheme-mismatch' in line
        assert 'mIoU: ' not in output
    _, output = run(python_tool(
        'test.py', SEG_CONFIG, gn_ws_run['checkpoint'], '--norm', 'gn-ws',
        *options), gn_ws_run['cwd'])
    assert 'mIoU: ' in output
    _, output = run(python_tool(
        'test.py', SEG_CONFIG, gn_ws_run['checkpoint'], '--norm', 'gn',
        '--allow-scheme-mismatch', *options), gn_ws_run['cwd'])
    assert 'mIoU: ' in output and 'allow_scheme_mismatch=True' in output


def test_resume_across_schemes_names_both(gn_ws_run, shapes_root, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(gn_ws_run['work_dir'], work_dir)
    options = data_options(SEG_CONFIG, shapes_root, max_iters=4)
    code, output = run(python_tool(
        'train.py', SEG_CONFIG, '--norm', 'bcn-ws', '--work-dir', work_dir,
        '--resume', *cli_options(options)), tmp_path, check=False)
    assert code == 1
    line = one_line_error(output)
    assert 'cannot resume' in line and "'gn-ws'" in line and \
        "'bcn-ws'" in line
    assert not (work_dir / 'iter_4.pth').exists()


@pytest.mark.parametrize('payload', ['rebuild', 'history_buffer'])
def test_resume_from_a_crafted_checkpoint_runs_nothing(
        gn_ws_run, shapes_root, tmp_path, payload):
    """A payload spliced into the meta of a genuine iter_2.pth: --resume
    refuses it in one line naming the file; the code never runs."""
    marker = tmp_path / 'ran'
    crafted = str(tmp_path / 'iter_2.pth')
    ops = dict(rebuild=payloads.rebuild_payload,
               history_buffer=payloads.history_buffer_payload)[payload]
    payloads.splice(str(gn_ws_run['checkpoint']), crafted, ops(marker))
    options = data_options(SEG_CONFIG, shapes_root, max_iters=4)
    code, output = run(python_tool(
        'train.py', SEG_CONFIG, '--norm', 'gn-ws', '--work-dir',
        tmp_path / 'work', '--resume', crafted, *cli_options(options)),
        tmp_path, check=False)
    assert code == 1
    line = one_line_error(output)
    assert f'{crafted}: refused to load' in line
    assert f'MMBCN_TRUSTED_CHECKPOINTS={crafted}' in line
    assert not marker.exists()


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_truncated_checkpoint_is_one_line(gn_ws_run, shapes_root, tmp_path,
                                          tool):
    bad = tmp_path / 'iter_2.pth'
    data = gn_ws_run['checkpoint'].read_bytes()
    bad.write_bytes(data[:len(data) // 3])
    options = cli_options(data_options(SEG_CONFIG, shapes_root))
    if tool == 'train.py':
        args = ['--work-dir', tmp_path / 'work', '--resume', bad]
    else:
        args = [bad]
    code, output = run(python_tool(tool, SEG_CONFIG, *args, '--norm', 'gn-ws',
                                   *options), tmp_path, check=False)
    assert code == 1
    assert f'{bad}: not a readable checkpoint' in one_line_error(output)


def test_second_run_in_a_work_dir_is_refused(shapes_root, tmp_path):
    work_dir = tmp_path / 'work'
    options = cli_options(data_options(SEG_CONFIG, shapes_root))
    with work_dir_lock(str(work_dir), 'the first run'):
        code, output = run(python_tool(
            'train.py', SEG_CONFIG, '--work-dir', work_dir, *options),
            tmp_path, check=False)
    assert code == 1
    line = one_line_error(output)
    assert f'work dir {work_dir} is in use by another training run' in line
    assert f'pid {os.getpid()}' in line and 'the first run' in line
    assert not list(work_dir.glob('*.pth'))
    # released with the first run: the work dir trains again
    run(python_tool('train.py', SEG_CONFIG, '--work-dir', work_dir,
                    *options), tmp_path)
    assert (work_dir / 'iter_2.pth').is_file()


def test_non_finite_training_stops_with_exit_1(shapes_root, tmp_path):
    """lr=1e6 with the shipped bcn-ws config: stopped at the first
    non-finite loss or statistic, no checkpoint, exit 1."""
    work_dir = tmp_path / 'work'
    options = data_options(SEG_CONFIG, shapes_root, max_iters=6)
    options.update({'optim_wrapper.optimizer.lr': 1e6,
                    'optim_wrapper.clip_grad': None,
                    'param_scheduler': None})
    code, output = run(python_tool(
        'train.py', SEG_CONFIG, '--work-dir', work_dir,
        *cli_options(options)), tmp_path, check=False)
    assert code == 1, output[-3000:]
    line = one_line_error(output)
    assert 'non-finite' in line and 'after iteration' in line
    assert not list(work_dir.glob('*.pth'))


def test_killed_launcher_takes_its_workers(shapes_root, tmp_path):
    """kill -9 of the tools/dist_train.sh process group (bash + torchrun):
    the workers, in sessions of their own, end too instead of training
    on."""
    from test_resume_kill import alive, descendants, job_env
    from test_tools import REPO, tool_env
    work_dir = tmp_path / 'work'
    options = data_options(SEG_CONFIG, shapes_root, max_iters=500)
    proc = subprocess.Popen(
        ['bash', os.path.join(REPO, 'tools', 'dist_train.sh'), SEG_CONFIG,
         '2', '--work-dir', str(work_dir), *cli_options(options)],
        env=tool_env(**job_env()), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.time() + 240
        while not any('Iter(train) [' in p.read_text(errors='replace')
                      for p in work_dir.glob('*/*.log')):
            assert proc.poll() is None, 'the job ended before training'
            assert time.time() < deadline, 'no iteration within 240 s'
            time.sleep(0.5)
        workers = [p for p in descendants(proc.pid)
                   if os.getpgid(p) != proc.pid]  # own sessions
        assert len(workers) >= 2, workers
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 20
        while any(alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if alive(p)]
    finally:
        for pid in workers:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
