"""The command line: one line on stderr and a non-zero exit for bad input, nothing written to the store."""

import subprocess
import sys

import pytest


def ex4(*args, store=None, cwd=None):
    command = [sys.executable, "-m", "ex4.cli"]
    if store is not None:
        command += ["--store", str(store)]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ex4: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--set", "mlp_lrr=0.1"], ["unknown parameter 'mlp_lrr'", "did you mean 'mlp_lr'"]),
        (["--set", "mlp_lr=-1"], ["'mlp_lr'", "-1", "must be > 0"]),
        (["--set", "mlp_batch_norm=true", "--set", "mlp_batch_size=1"], ["mlp_batch_norm"]),
        (["--set", "europe_dir=/no/such/folder"], ["/no/such/folder"]),
    ],
)
def test_bad_parameters_fail_in_one_line_and_store_nothing(tmp_path, args, fragments):
    store = tmp_path / "store"
    result = ex4("run", "mlp-lr", *args, store=store)
    assert_one_line_error(result, *fragments)
    assert not store.exists() or not any(path for path in store.iterdir() if not path.name.startswith("."))


def test_yaml_syntax_error_in_profile(tmp_path):
    profile = tmp_path / "bad.yml"
    profile.write_text("seed: 1\nmlp_lr: [0.1\n")
    assert_one_line_error(ex4("run", "mlp-lr", "--params", str(profile), store=tmp_path / "s"), "bad.yml line")


def test_unknown_experiment(tmp_path):
    assert_one_line_error(ex4("run", "mlp-lrs", store=tmp_path), "unknown experiment 'mlp-lrs'", "mlp-lr")


def test_debug_shows_the_traceback(tmp_path):
    result = ex4("--debug", "run", "mlp-lr", "--set", "mlp_lr=0", store=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_data_check_reports_the_bad_file(tmp_path):
    (tmp_path / "train.csv").write_text(",long,lat,country\n0,10.0,50.0,0\n")
    result = ex4("data", "check", "europe", str(tmp_path))
    assert_one_line_error(result, "validation.csv")


def test_results_commands_on_an_empty_store(tmp_path):
    assert ex4("results", "ls", store=tmp_path).returncode == 0
    assert_one_line_error(ex4("results", "rm", "abc", store=tmp_path), "abc")
    assert ex4("results", "prune", store=tmp_path).returncode == 0


def test_run_list_names_every_experiment():
    result = ex4("run", "list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["mlp-lr", "mlp-epochs", "mlp-batchnorm", "mlp-batch-size", "mlp-shapes", "mlp-gradients",
                     "mlp-implicit", "cnn"]
