"""`ex4 preview`: serve the book on 127.0.0.1, re-render when a source changes, reload the open page.

* **Serving**: the standard library's `http.server` (a `ThreadingHTTPServer` over `_book/`). HTML pages get a
  small script before `</head>` as they are sent — only here, never in the files — which polls
  `/__ex4/version` and reloads the page when the number there changes.
* **Watching**: `watchfiles` (Rust `notify`) on `index.qmd`, `_quarto.yml`, `report/`, `params/` and `src/ex4`;
  a change re-renders the book in this process (imports and file digests stay warm), HTML only — the PDF is
  made by `ex4 render`. The chapter cache decides what re-executes: a sentence re-runs no kernel.
* **Stopping**: Ctrl-C ends the watch loop, shuts the server down and returns.

A render that fails (a chapter raising, a bad profile) is printed as one line; the last good book stays served
and the next change tries again.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ex4.errors import Ex4Error

VERSION_PATH = "/__ex4/version"
WATCHED = ("index.qmd", "_quarto.yml", "report", "params", "src/ex4")
RELOAD_SCRIPT = """<script>/* ex4 preview: reload when the book is rebuilt */
(function () {
  var seen = null;
  function poll() {
    fetch("%s", {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (v) {
      if (seen === null) { seen = v; } else if (v !== seen) { location.reload(); return; }
      setTimeout(poll, 300);
    }).catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
</script>""" % VERSION_PATH


class _Handler(http.server.SimpleHTTPRequestHandler):
    preview: "Preview"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: the render log is what the writer reads

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path == VERSION_PATH:
            self._send(str(self.preview.version).encode(), "text/plain")
            return
        file = Path(self.translate_path(path))
        if file.is_dir():
            file = file / "index.html"
        if file.suffix == ".html" and file.is_file():
            text = file.read_text(encoding="utf-8")
            marker = text.find("</head>")
            text = text[:marker] + RELOAD_SCRIPT + text[marker:] if marker >= 0 else text + RELOAD_SCRIPT
            self._send(text.encode("utf-8"), "text/html; charset=utf-8")
            return
        super().do_GET()

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Preview:
    """The server and the watch loop; `render()` builds the book, `version` counts finished builds."""

    def __init__(self, project_root: Path, render: Callable[[], Any], port: int = 4848, out_dir: Path | None = None):
        if not 0 <= port <= 65535:
            raise Ex4Error(f"--port {port}: expected 0..65535")
        self.project_root = Path(project_root).resolve()
        self.out_dir = Path(out_dir).resolve() if out_dir else self.project_root / "_book"
        self.render = render
        self.version = 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        handler = type("PreviewHandler", (_Handler,), {"preview": self})
        try:
            self.server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", port), functools.partial(handler, directory=str(self.out_dir)))
        except OSError as error:
            raise Ex4Error(f"127.0.0.1:{port}: cannot serve the preview ({error.strerror or error}); "
                           "pick another with --port") from None
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def build(self) -> bool:
        began = time.perf_counter()
        try:
            self.render()
        except Ex4Error as error:
            print(f"ex4 preview: error: {error}", file=sys.stderr, flush=True)
            return False
        self.version += 1
        print(f"ex4 preview: rebuilt in {time.perf_counter() - began:.1f} s; {self.url}", file=sys.stderr, flush=True)
        return True

    def watched(self) -> list[Path]:
        return [self.project_root / name for name in WATCHED if (self.project_root / name).exists()]

    def serve(self, stop: threading.Event | None = None) -> None:
        """Build once, serve, and rebuild on every change until Ctrl-C (or `stop` is set)."""
        try:
            from watchfiles import watch
        except ImportError:
            raise Ex4Error("ex4 preview needs the watchfiles package (pip install watchfiles)") from None
        stop = stop or threading.Event()
        thread = threading.Thread(target=self.server.serve_forever, name="ex4-preview-server", daemon=True)
        thread.start()
        print(f"ex4 preview: serving {self.out_dir} at {self.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            self.build()
            for _changes in watch(*self.watched(), stop_event=stop, debounce=150, step=50,
                                  watch_filter=_source_filter, raise_interrupt=False):
                self.build()
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)
            print("ex4 preview: stopped", file=sys.stderr, flush=True)


def _source_filter(change: Any, path: str) -> bool:
    """Sources only: not bytecode, editor swap files or hidden folders."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    # `__pycache__` anywhere, the folder itself included: Python writes bytecode there (a temp file, then a rename)
    # whenever a render imports a module, and that must not look like an edit
    return not (name.endswith((".pyc", ".swp", "~")) or name.startswith(".#") or "__pycache__" in parts
                or "/." in path.replace("\\", "/"))


def preview(project_root: Path, params_file: Path | None = None, overrides: Mapping[str, Any] | None = None,
            port: int = 4848, renderer: str = "ex4", out_dir: Path | None = None,
            stop: threading.Event | None = None) -> None:
    """`ex4 preview`: see the module docstring."""
    from ex4.render.book import render_book

    build = functools.partial(render_book, project_root, params_file=params_file, out_dir=out_dir,
                              renderer=renderer, overrides=overrides, formats=("html",))
    Preview(project_root, build, port=port, out_dir=out_dir).serve(stop)
