"""The writing loop, measured: how long until the book shows what was just written.

Prints, for the profile given (`--params`, default: the full book; its results must already be stored, or the
warm-up render trains them):

1. `ex4 render` (HTML + PDF) with every result stored and nothing changed        goal <= 10 s
2. one sentence edited in one chapter: `ex4 render --to html` and `ex4 render`     goal <= 10 s to HTML
3. the same edit while `ex4 preview` runs, until the served page has it           goal <= 5 s
4. warm `nox -s report` after a one-sentence edit, from its measured steps        goal <= 60 s:
   `ex4 data build --if-missing`, the quick tests (`pytest -m "not book and not slow"`, as the noxfile runs
   them), `ex4 render`, `pytest -m book` on `_book/` (`--no-report` skips it). nox itself is not started: its
   `ensure_env` would reinstall the shared environment from this checkout.

Each render is a fresh `python -m ex4.cli` process (interpreter start and imports included). The edit goes into
`report/section6-1.qmd` itself and the file is put back afterwards, also on Ctrl-C. Every figure is a median of
`--repeat` runs; the CPU model and the load average are printed with each.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "report" / "section6-1.qmd"
# the tests `nox -s report` runs before rendering (noxfile.py: report; tests/test_test_tiers.py checks they agree)
QUICK_TESTS = "not book and not slow"
SENTENCE = "One reference line runs through the loss figures"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f})"


def environment() -> dict[str, str]:
    src = str(ROOT / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}


def run(args: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env or environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"benchmark: {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds


def render(profile: list[str], *extra: str) -> float:
    return run(["-m", "ex4.cli", "render", *profile, *extra])


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s (median of {len(values)}: {', '.join(f'{v:.1f}' for v in values)})"


def _letters(number: int) -> str:
    """`number` written with the letters a-z (base 26), for a marker without digits."""
    letters = ""
    while True:
        number, digit = divmod(number, 26)
        letters = "abcdefghijklmnopqrstuvwxyz"[digit] + letters
        if number == 0:
            return letters


class Edit:
    """Edits one sentence of the chapter, a new wording each time; puts the original back on exit."""

    def __init__(self) -> None:
        self.original = CHAPTER.read_text(encoding="utf-8")
        if SENTENCE not in self.original:
            sys.exit(f"benchmark: {CHAPTER.name} no longer holds the sentence {SENTENCE!r}; update SENTENCE")
        self.count = 0

    def __enter__(self) -> "Edit":
        return self

    def next(self) -> str:
        self.count += 1
        # in words, not digits: a number typed into prose fails the chapters' own check (tests/test_prose.py), which
        # the warm `nox -s report` of step 4 runs with the edit in place
        marker = f"One reference line (edit {_letters(self.count)} {_letters(time.time_ns())}) runs through the loss figures"
        CHAPTER.write_text(self.original.replace(SENTENCE, marker), encoding="utf-8")
        return marker

    def __exit__(self, *exc) -> None:
        CHAPTER.write_text(self.original, encoding="utf-8")


def page_shows(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text(encoding="utf-8")


def preview_edits(profile: list[str], edit: Edit, repeat: int) -> list[float]:
    process = subprocess.Popen([sys.executable, "-m", "ex4.cli", "preview", "--port", "0", *profile], cwd=ROOT,
                               env=environment(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    times = []
    try:
        url = None
        for line in process.stderr:
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            url = url or (found.group(1) if found else None)
            if "rebuilt in" in line or "error" in line:
                break
        if url is None:
            sys.exit("benchmark: ex4 preview did not start")
        import threading

        threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep the pipe flowing
        for _ in range(repeat):
            marker = edit.next()
            began = time.perf_counter()
            while time.perf_counter() - began < 120:
                with urllib.request.urlopen(url + "report/section6-1.html") as response:
                    if marker.encode() in response.read():
                        break
                time.sleep(0.05)
            else:
                sys.exit("benchmark: the preview did not show the edit within 120 s")
            times.append(time.perf_counter() - began)
            time.sleep(1.0)
    finally:
        # SIGTERM stops ex4 as Ctrl-C does; SIGINT would be ignored when this benchmark runs as a background job
        process.send_signal(__import__("signal").SIGTERM)
        process.wait(timeout=60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="parameter profile (default: the full book)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="skip the warm `nox -s report` figure (step 4)")
    args = parser.parse_args()
    profile = ["--params", args.params] if args.params else []
    from ex4.train.device import cpu_description

    print(f"CPU: {cpu_description()}; {load()}; profile: {args.params or 'full book'}")
    print(f"warm-up render (stores results and chapters if missing): {render(profile):.1f} s")

    unchanged = [render(profile) for _ in range(args.repeat)]
    print(f"1. ex4 render, nothing changed (HTML + PDF): {median(unchanged)}  goal <= 10 s; {load()}")

    book = ROOT / "_book" / "report" / "section6-1.html"
    with Edit() as edit:
        html, both = [], []
        for _ in range(args.repeat):
            marker = edit.next()
            html.append(render(profile, "--to", "html"))
            assert page_shows(book, marker), "the HTML does not show the edit"
            marker = edit.next()
            both.append(render(profile))
            assert page_shows(book, marker), "the HTML does not show the edit"
        print(f"2. one sentence edited, ex4 render --to html: {median(html)}  goal <= 10 s; {load()}")
        print(f"   one sentence edited, ex4 render (HTML + PDF): {median(both)}; {load()}")
        shown = preview_edits(profile, edit, args.repeat)
        print(f"3. one sentence edited in ex4 preview, until the served page has it: {median(shown)}  goal <= 5 s; "
              f"{load()}")
        if not args.no_report:
            data = run(["-m", "ex4.cli", "data", "build", "--if-missing"])
            suite = run(["-m", "pytest", "-q", "-x", "-m", QUICK_TESTS, "-p", "no:cacheprovider"])
            edit.next()
            book_render = render(profile)
            checks = run(["-m", "pytest", "-q", "-m", "book", "-p", "no:cacheprovider", "tests/test_book_smoke.py",
                          "tests/test_browser.py"],
                         env={**environment(), "EX4_BOOK_DIR": str(ROOT / "_book")})
            total = data + suite + book_render + checks
            print(f"4. warm nox -s report after a one-sentence edit: {total:.1f} s = data {data:.1f} + tests "
                  f"{suite:.1f} + render {book_render:.1f} + book checks {checks:.1f}  goal <= 60 s; {load()}")
    # the edits leave _book/ showing a sentence that is no longer in the source: render it back
    print(f"final render of the unedited chapter: {render(profile):.1f} s")


if __name__ == "__main__":
    main()
