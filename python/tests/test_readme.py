"""The README's Python example, run as written from the repository root."""
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_python_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "the README has one Python example"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        exec(compile(blocks[0], "README.md (python)", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "(1, 32) (4, 5)" in out and out.strip().endswith("True")
