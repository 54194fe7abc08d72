"""The Quarto path, driven through a stand-in `quarto` script (Quarto itself is not installable here).

The stand-in records its arguments and environment and writes a fake book, so these tests check what ex4
asks Quarto to do (version gate, output folder, validated parameters, environment, swap, error summary),
not Quarto's rendering.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ex4.errors import Ex4Error
from ex4.render import render_book, render_chapter
from ex4.render.book import choose_renderer
from ex4.render.parameters import parameter_hash
from ex4.render.quarto import quarto_version
from render_toy import tree_digest, write_toy_book

FAKE_QUARTO = """\
#!/bin/sh
if [ "$1" = "--version" ]; then echo "$FAKE_QUARTO_VERSION"; exit 0; fi
python3 - "$@" <<'PY'
import json, os, sys
args = sys.argv[1:]
params = args[args.index("--execute-params") + 1] if "--execute-params" in args else None
record = {"args": args, "renderer": os.environ.get("EX4_RENDERER"), "build_log": os.environ.get("EX4_BUILD_LOG"),
          "python": os.environ.get("QUARTO_PYTHON"), "params": open(params).read() if params else None}
with open(os.environ["FAKE_QUARTO_RECORD"], "w") as handle:
    json.dump(record, handle)
PY
input="$2"; out=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--output-dir" ]; then out="$2"; fi
  shift
done
echo "[1/3] index.qmd"
if [ -n "$FAKE_QUARTO_FAIL" ]; then
  echo "[2/3] report/one.qmd"
  echo "Traceback (most recent call last):"
  echo "ZeroDivisionError: division by zero"
  exit 1
fi
mkdir -p "$out/report"
if [ -d "$input" ]; then stem=index; echo "%PDF-fake" > "$out/toy-book.pdf"
else stem=$(basename "$input" .qmd); echo "%PDF-fake" > "$out/$stem.pdf"; fi
echo "<html>$EX4_RENDERER</html>" > "$out/$stem.html"
"""


@pytest.fixture
def fake_quarto(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "quarto"
    script.write_text(FAKE_QUARTO, encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_QUARTO_VERSION", "1.9.18")
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_QUARTO_RECORD", str(record))
    return record


def test_quarto_is_used_only_from_version_1_9(fake_quarto, monkeypatch):
    assert quarto_version() == "1.9.18"
    assert choose_renderer("auto") == ("quarto", "quarto 1.9.18")
    assert choose_renderer("ex4")[0] == "ex4"
    monkeypatch.setenv("FAKE_QUARTO_VERSION", "1.8.25")
    assert quarto_version() is None
    assert choose_renderer("auto")[0] == "ex4"
    with pytest.raises(Ex4Error, match="no quarto >= 1.9"):
        choose_renderer("quarto")


def test_quarto_renders_into_a_temporary_folder_with_validated_parameters(tmp_path, fake_quarto):
    root = write_toy_book(tmp_path / "book")
    profile = root / "p.yml"
    profile.write_text("mlp_lr: 1e-2\n", encoding="utf-8")
    result = render_book(root, params_file=profile, renderer="quarto")
    record = json.loads(fake_quarto.read_text())
    assert record["args"][:2] == ["render", str(root)] and "--output-dir" in record["args"]
    assert record["params"].strip() == "mlp_lr: 0.01"  # normalised by ex4.params, not the raw "1e-2"
    assert record["renderer"] == "quarto 1.9.18" and record["build_log"].endswith("build-log.jsonl")
    assert record["python"]
    assert result.renderer == "quarto 1.9.18" and result.html_index == root / "_book" / "index.html"
    assert "quarto 1.9.18" in result.html_index.read_text() and result.pdf == root / "_book" / "toy-book.pdf"
    assert (root / "_book" / "build-log.jsonl").is_file()


def test_a_failing_quarto_render_is_one_line_and_keeps_the_book(tmp_path, fake_quarto, monkeypatch):
    root = write_toy_book(tmp_path / "book")
    (root / "_book").mkdir()
    (root / "_book" / "index.html").write_text("previous", encoding="utf-8")
    monkeypatch.setenv("FAKE_QUARTO_FAIL", "1")
    with pytest.raises(Ex4Error, match=r"^report/one\.qmd: ZeroDivisionError: division by zero$"):
        render_book(root, renderer="quarto")
    assert tree_digest(root / "_book") == {"index.html": b"previous"}


def test_a_quarto_variant_gets_its_parameters_and_its_own_folder(tmp_path, fake_quarto):
    root = write_toy_book(tmp_path / "book")
    folder = render_chapter(Path("report/one.qmd"), {"seed": 7}, root, renderer="quarto")
    assert folder == root / "_variants" / f"one-{parameter_hash({'seed': 7})}"
    assert (folder / "one.html").is_file() and (folder / "one.pdf").is_file()
    args = json.loads(fake_quarto.read_text())["args"]
    assert args[args.index("-P") + 1] == "seed:7"
    assert not (root / "_book").exists()
