"""Execute a chapter notebook with Papermill and turn a failing cell into one line that names the .qmd line."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import nbformat

from ex4.errors import Ex4Error

KERNEL_NAME = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-\d+-[0-9a-f]+>|/tmp/ipykernel_\d+/\d+\.py),? (?:line |in )?(\d+)")


def ensure_kernel() -> None:
    """Make sure a `python3` kernelspec exists; install ipykernel's into this environment if it does not."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        return
    except NoSuchKernel:
        pass
    result = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise Ex4Error(f"no '{KERNEL_NAME}' Jupyter kernel and 'python -m ipykernel install --sys-prefix' failed: "
                       f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for kernels started inside the block (they inherit os.environ)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(notebook: nbformat.NotebookNode, chapter_path: Path, output_path: Path,
                     parameters: Mapping[str, Any], cwd: Path) -> nbformat.NotebookNode:
    """Run every cell; Papermill injects `parameters` in a cell right after the one tagged `parameters`."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    input_path = output_path.with_suffix(".input.ipynb")
    nbformat.write(notebook, str(input_path))
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        return papermill.execute_notebook(
            str(input_path), str(output_path), parameters=dict(parameters) or None, kernel_name=KERNEL_NAME,
            progress_bar=False, log_output=False, request_save_on_cell_execute=False, cwd=str(cwd),
            start_timeout=120, stderr_file=sys.stderr,
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except PapermillExecutionError as error:
        raise Ex4Error(_describe_failure(error, chapter_path, output_path)) from None


def _describe_failure(error: Any, chapter_path: Path, output_path: Path) -> str:
    """'<chapter>:<line>: <Exception>: <message>' for the cell that raised."""
    line = _failing_line(error, output_path)
    where = f"{chapter_path}:{line}" if line else str(chapter_path)
    message = " ".join(str(error.evalue).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{where}: {error.ename}: {message}" if message else f"{where}: {error.ename}"


def _failing_line(error: Any, output_path: Path) -> int | None:
    cell = _failing_cell(output_path)
    if cell is None:
        return None
    meta = cell.get("metadata", {}).get("ex4", {})
    lines: list[int] = meta.get("lines") or []
    if not lines:
        return meta.get("line")
    within = _line_within_cell(error.traceback)
    if within is not None and 1 <= within <= len(lines):
        return lines[within - 1]
    return lines[0]


def _failing_cell(output_path: Path) -> Any:
    if not output_path.exists():
        return None
    notebook = nbformat.read(str(output_path), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return cell
    return None


def _line_within_cell(traceback: list[str]) -> int | None:
    """The line of the cell's own frame: the first 'Cell In[n], line k' of IPython's traceback."""
    for entry in traceback or []:
        match = _CELL_FRAME.search(_ANSI.sub("", entry))
        if match:
            return int(match.group(1))
    return None
