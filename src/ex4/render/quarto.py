"""Use the Quarto CLI when a new enough one is on PATH (typst books need Quarto ≥ 1.9).

Quarto renders into a temporary folder like the ex4 renderer does, so the swap that keeps `_book/`
intact on failure is shared. Quarto's own progress lines pass through; a failure is summarised in one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path

from ex4.errors import Ex4Error

MINIMUM = (1, 9)


def quarto_version() -> str | None:
    """The version of `quarto` on PATH when it is at least 1.9, else None."""
    binary = shutil.which("quarto")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", result.stdout)
    if result.returncode != 0 or match is None:
        return None
    if (int(match.group(1)), int(match.group(2))) < MINIMUM:
        return None
    return match.group(0)


def run_quarto(args: list[str], cwd: Path, what: str) -> None:
    """Run `quarto <args>`, echoing its output; on failure raise one line naming the chapter and the error."""
    process = subprocess.Popen(["quarto", *args], cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    tail: deque[str] = deque(maxlen=400)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    code = process.wait()
    if code != 0:
        raise Ex4Error(summarise_failure(list(tail), what, code))


def summarise_failure(lines: list[str], what: str, code: int) -> str:
    chapter = None
    error = None
    for line in lines:
        progress = re.match(r"^\s*\[\s*\d+/\d+\]\s+(\S+)", line)
        if progress:
            chapter = progress.group(1)
        found = re.match(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\s*:\s*(.*)$", line)
        if found:
            error = f"{found.group(1)}: {found.group(2)}"
    where = chapter or what
    return f"{where}: {error}" if error else f"{where}: quarto render failed (exit {code}); see the output above"
