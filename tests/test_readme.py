"""README.md: its commands match CI, and its Python examples run as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "README.md")) as f:
    README = f.read()
EXAMPLES = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_opens_with_the_install_and_test_commands():
    commands = re.findall(r"^    (python3 -m venv .*)$", README, flags=re.MULTILINE)
    assert len(commands) >= 2
    run, test = commands[:2]
    assert "train.py --layer=both" in run
    assert README.index(run) < 400  # Opens the README.
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert test in ci.splitlines(), "CI must run the README's test command"


def test_readme_has_no_unfilled_sections():
    assert "PLACEHOLDER" not in README


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", EXAMPLES[index]], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_readme_has_the_examples_it_promises():
    assert len(EXAMPLES) >= 2
    assert any("GradientTape" in example for example in EXAMPLES)
    assert any("saved_model.load" in example for example in EXAMPLES)
