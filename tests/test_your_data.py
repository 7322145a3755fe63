"""docs/your-data.md as a user runs it: its two training commands, taken from the page, with only the data paths
replaced (``/data/mine`` by a small generated dataset laid out as the page says, the quick-start detector by a
short shapes run), run in order; each must finish and print a mean AP on the validation set."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faster_rcnn.datasets.shapes import ShapesSpec, ensure_shapes
from tool_runs import REPO, _env

DOC = REPO / 'docs' / 'your-data.md'
QUICK_START_MODEL = 'output/tiny/shapes_trainval/default/tiny_faster_rcnn_iter_1600.pth'
EVALUATION = re.compile(r'^Evaluation on (\S+) \((\d+) images\) at iteration (\d+): (.+) = (\d+\.\d+)$', re.M)


def doc_commands(text: str) -> list[list[str]]:
    """The ``python tools/trainval_net.py`` commands of the page's bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for command in block.replace('\\\n', ' ').splitlines():
            if command.startswith('python tools/trainval_net.py'):
                commands.append(shlex.split(command))
    return commands


def make_mine(root: Path) -> Path:
    """``root/mine`` in the page's layout (images/, train.json, val.json) from a generated shapes set."""
    shapes = root / 'shapes'
    ensure_shapes(str(shapes), ShapesSpec(seed=3, num_trainval=48, num_test=24))
    mine = root / 'mine'
    shutil.copytree(shapes / 'JPEGImages', mine / 'images')
    for split, name in (('trainval', 'train'), ('test', 'val')):
        data = json.loads((shapes / 'annotations' / f'instances_{split}.json').read_text())
        assert all((mine / 'images' / im['file_name']).is_file() for im in data['images'])
        (mine / f'{name}.json').write_text(json.dumps(data))
    return mine


def test_the_page_has_two_training_commands_on_the_documented_layout():
    commands = doc_commands(DOC.read_text())
    assert len(commands) == 2
    smoke, finetune = commands
    assert '--net' in smoke and smoke[smoke.index('--net') + 1] == 'tiny' and '--device' in smoke
    assert finetune[finetune.index('--finetune') + 1] == QUICK_START_MODEL
    for command in commands:
        assert command[command.index('--imdb') + 1] == 'coco_json:/data/mine/train.json:/data/mine/images'
        assert command[command.index('--imdbval') + 1] == 'coco_json:/data/mine/val.json:/data/mine/images'
    for page in (REPO / 'README.md', REPO / 'data' / 'README.md'):
        assert 'your-data.md' in page.read_text(), page


@pytest.mark.slow
def test_the_two_commands_of_the_page_train_and_end_with_a_mean_ap(tmp_path, trained):
    mine = make_mine(tmp_path)
    env = {**_env(), 'FRCNN_ROOT_DIR': str(tmp_path / 'root'), 'FRCNN_DATA_DIR': str(tmp_path / 'root' / 'data')}
    aps = []
    for command in doc_commands(DOC.read_text()):
        argv = [arg.replace('/data/mine', str(mine)).replace(QUICK_START_MODEL, str(trained)) for arg in command]
        assert argv[:2] == ['python', 'tools/trainval_net.py']
        proc = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert not [line for line in proc.stderr.splitlines() if line.startswith('warning: ')], proc.stderr
        evaluations = EVALUATION.findall(proc.stdout)
        iters = int(argv[argv.index('--iters') + 1])
        assert evaluations and int(evaluations[-1][2]) == iters, proc.stdout[-3000:]
        name, images, _, metric, ap = evaluations[-1]
        assert images == '24' and metric and 0.0 <= float(ap) <= 1.0
        aps.append(float(ap))
    print('smoke AP, fine-tuned AP:', aps)
    # From a detector of the same kind of pictures, a short fine-tune does better than the smoke run.
    assert aps[1] > aps[0], aps


def readme_commands(text: str) -> list[list[str]]:
    """The indented ``python tools/trainval_net.py`` commands of data/README.md, continuation lines joined."""
    joined = re.sub(r'\\\n\s+', ' ', text)
    return [shlex.split(line.strip()) for line in joined.splitlines()
            if line.startswith('    python tools/trainval_net.py')]


@pytest.mark.slow
def test_the_data_readme_voc_folder_recipe_runs_as_written(tmp_path):
    """data/README.md's own-data commands (the COCO one is the page's smoke run): the VOC-layout one on a
    generated folder with train / val splits, as written but for the folder."""
    commands = readme_commands((REPO / 'data' / 'README.md').read_text())
    assert len(commands) == 2 and 'coco_json:/data/mine/train.json:/data/mine/images' in commands[0]
    voc = tmp_path / 'mine'
    ensure_shapes(str(voc), ShapesSpec(seed=4, num_trainval=24, num_test=8))
    sets = voc / 'ImageSets' / 'Main'
    shutil.copyfile(sets / 'trainval.txt', sets / 'train.txt')
    shutil.copyfile(sets / 'test.txt', sets / 'val.txt')
    argv = [arg.replace('/data/mine', str(voc)) for arg in commands[1]]
    env = {**_env(), 'FRCNN_ROOT_DIR': str(tmp_path / 'root'), 'FRCNN_DATA_DIR': str(tmp_path / 'root' / 'data')}
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'done solving:' in proc.stdout and 'tiny_faster_rcnn_iter_200.pth' in proc.stdout
    assert (tmp_path / 'root' / 'output' / 'tiny').is_dir()
