"""`ex4 preview` refuses bad input with one line, before it serves anything."""

from __future__ import annotations

import socket

from ex4.cli import main


def test_a_port_out_of_range_is_one_line(capsys):
    assert main(["preview", "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "ex4: error: --port 70000: expected 0..65535"


def test_a_missing_profile_is_one_line(capsys, tmp_path):
    assert main(["preview", "--params", str(tmp_path / "nope.yml")]) == 2
    assert capsys.readouterr().err.strip() == f"ex4: error: --params {tmp_path / 'nope.yml'}: file not found"


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["preview", "--port", str(port)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"ex4: error: 127.0.0.1:{port}: cannot serve the preview") and "\n" not in error


def test_the_watcher_ignores_bytecode_and_its_folder():
    """Python writes `__pycache__/` (folder, temp file, rename) whenever a render imports a module: not an edit."""
    from ex4.render.preview import _source_filter

    assert _source_filter(None, "/book/report/section7.qmd")
    assert _source_filter(None, "/book/src/ex4/fmt.py")
    assert not _source_filter(None, "/book/src/ex4/__pycache__")
    assert not _source_filter(None, "/book/src/ex4/__pycache__/fmt.cpython-311.pyc.140234")
    assert not _source_filter(None, "/book/src/ex4/fmt.cpython-311.pyc")
    assert not _source_filter(None, "/book/report/.section7.qmd.swp")
