"""The chapter cache never serves a stale chapter: each change re-executes what it must, and only that.

A small book whose chapter reads a data file, a stored result (through the store's own folder, as
`ex4.experiments.run` does) and an ex4 module; the other chapter reads none of them. Every test changes one
input and checks which chapters the next render executed (`BookResult.reused`) and what the page says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ex4.render import render_book
from ex4.render.cache import ChapterCache
from render_toy import write_toy_book

pytestmark = pytest.mark.slow

READER = '''\
---
title: "Reader"
---

```{python}
#| tags: [parameters]
seed = 0
```

```{python}
import json, os
from pathlib import Path
import ex4.fmt as fmt
import helpers
data = Path("inputs/values.txt").read_text().strip()
store = Path(os.environ["EX4_STORE"])
result = json.loads((store / "k1" / "result.json").read_text())
```

The data say `{python} data`, the stored result is `{python} result["accuracy"]`, the seed is `{python} seed`,
formatted `{python} fmt.pct(0.5)`, helped `{python} helpers.word()`.

```{python}
#| output: asis
print("A sentence chosen in code.")
```
'''

OTHER = '''\
# Other {#sec-other}

```{python}
print(1 + 1)
```

Plain prose of the other chapter.
'''


def _store_entry(store: Path, key: str, accuracy: float) -> None:
    import hashlib

    folder = store / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps({"accuracy": accuracy}))
    meta = json.dumps({"key": key, "files": {"result.json": hashlib.sha256(
        (folder / "result.json").read_bytes()).hexdigest()}}).encode()
    (folder / "meta.json").write_bytes(meta)
    (folder / "meta.sha256").write_text(hashlib.sha256(meta).hexdigest() + "\n")


@pytest.fixture
def book(tmp_path, monkeypatch):
    root = write_toy_book(tmp_path / "book", {"index.qmd": "# Preface {.unnumbered}\n\nHello.\n",
                                              "report/one.qmd": READER, "report/two.qmd": OTHER})
    (root / "inputs").mkdir()
    (root / "inputs" / "values.txt").write_text("forty-two\n")
    (root / "helpers.py").write_text("def word():\n    return 'first'\n")
    store = tmp_path / "store"
    _store_entry(store, "k1", 0.75)
    monkeypatch.setenv("EX4_STORE", str(store))
    monkeypatch.setenv("EX4_ROOT", str(root))
    first = render_book(root, formats=("html",))
    assert first.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": False}
    return root, store


def page(root: Path, name: str = "report/one.html") -> str:
    return (root / "_book" / name).read_text(encoding="utf-8")


def test_nothing_changed_reuses_every_chapter_and_the_appendix_log_says_so(book):
    root, _ = book
    again = render_book(root, formats=("html",))
    assert again.reused == {"index.qmd": None, "report/one.qmd": True, "report/two.qmd": True}
    log = json.loads((root / "_book" / "chapter-log.json").read_text())
    assert [entry["reused"] for entry in log] == [False, True, True]
    assert "forty-two" in page(root) and "0.75" in page(root)


def test_fresh_executes_every_chapter(book):
    root, _ = book
    assert render_book(root, formats=("html",), fresh=True).reused["report/two.qmd"] is False


def test_a_sentence_edit_runs_no_kernel_and_shows_on_the_page(book):
    root, _ = book
    qmd = root / "report" / "one.qmd"
    qmd.write_text(qmd.read_text().replace("The data say", "A new paragraph.\n\nNow the data say"))
    result = render_book(root, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": True, "report/two.qmd": True}
    html = page(root)
    assert "Now the data say" in html and "A new paragraph." in html and "forty-two" in html


def test_a_changed_inline_expression_or_code_cell_re_executes_that_chapter_only(book):
    root, _ = book
    qmd = root / "report" / "one.qmd"
    qmd.write_text(qmd.read_text().replace('`{python} seed`', '`{python} seed + 10`'))
    assert render_book(root, formats=("html",)).reused == {"index.qmd": None, "report/one.qmd": False,
                                                           "report/two.qmd": True}
    assert "the seed is 10" in page(root)
    qmd.write_text(qmd.read_text().replace("A sentence chosen in code.", "Another sentence chosen in code."))
    assert render_book(root, formats=("html",)).reused["report/one.qmd"] is False
    assert "Another sentence chosen in code." in page(root)


def test_a_changed_data_file_re_executes_the_chapter_that_read_it(book):
    root, _ = book
    (root / "inputs" / "values.txt").write_text("forty-three\n")
    result = render_book(root, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": True}
    assert "forty-three" in page(root)


def test_a_changed_or_removed_result_re_executes_the_chapter_that_read_it(book):
    root, store = book
    _store_entry(store, "k1", 0.5)  # the same key, other content
    result = render_book(root, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": True}
    assert "0.5" in page(root)
    import shutil

    shutil.rmtree(store / "k1")
    from ex4.errors import Ex4Error

    with pytest.raises(Ex4Error, match="report/one.qmd"):  # re-executed, so the missing result is noticed
        render_book(root, formats=("html",))


def test_a_changed_parameter_re_executes_the_chapter_that_declares_it(book):
    root, _ = book
    profile = root / "p.yml"
    profile.write_text("seed: 3\n")
    result = render_book(root, params_file=profile, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": True}
    assert "the seed is 3" in page(root)


def test_an_edited_project_module_re_executes_the_chapter_that_imported_it(book):
    root, _ = book
    (root / "helpers.py").write_text("def word():\n    return 'second'\n")
    result = render_book(root, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": True}
    assert "helped second" in page(root)


def test_a_changed_ex4_module_re_executes_the_chapters_that_imported_it(book, monkeypatch):
    root, _ = book
    import ex4.fmt

    source = Path(ex4.fmt.__file__)
    digest_of = {}

    def changed(path):  # stands in for an edit of src/ex4/fmt.py without touching the checkout
        return "0" * 64 if Path(path) == source else digest_of.setdefault(path, real(path))

    from ex4.render import cache

    real = cache.file_digest
    monkeypatch.setattr(cache, "file_digest", changed)
    result = render_book(root, formats=("html",))
    assert result.reused == {"index.qmd": None, "report/one.qmd": False, "report/two.qmd": True}


def test_an_entry_that_fails_its_checksum_is_deleted_and_the_chapter_re_executed(book):
    root, _ = book
    entries = list((root / ".ex4" / "cache" / "chapters" / "report-one").glob("*.json"))
    assert len(entries) == 1
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[:-10] + b"0123456789")
    assert ChapterCache(entries[0].parent.parent).load("report-one", entries[0].stem) is None
    assert not entries[0].exists()
    assert render_book(root, formats=("html",)).reused["report/one.qmd"] is False


def test_a_preview_build_writes_no_pdf(book):
    root, _ = book
    assert not list((root / "_book").glob("*.pdf"))
    assert "Download PDF" not in page(root, "index.html")
