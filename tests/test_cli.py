"""The command line: the models table, help, and one-line errors with exit code 2."""

import subprocess
import sys

from reslab.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "reslab", *args], capture_output=True, text=True, timeout=300)


def test_models_table(capsys):
    assert main(["models", "resnet*"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "269,722" in out and "853,018" in out
    assert "plain20" not in out


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "models" in proc.stdout


def test_bad_model_pattern_is_one_line_exit_2():
    proc = run_cli("models", "nosuchnet*")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "nosuchnet" in proc.stderr


def test_unknown_command_is_one_line_exit_2():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
