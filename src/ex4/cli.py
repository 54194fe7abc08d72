"""The `ex4` command: build and check data, run experiments, manage stored results, render the report.

Bad input ends in one line on stderr and a non-zero exit; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ex4.errors import Ex4Error

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


# ---- commands ------------------------------------------------------------------------------------------------


def cmd_data_build(args: argparse.Namespace) -> int:
    from ex4.data import bundled
    from ex4.paths import bundled_data_dir

    if args.if_missing and not args.dest and args.faces_difficulty is None:
        print(f"europe: {bundled.ensure_bundled_europe()}")
        print(f"faces:  {bundled.ensure_bundled_faces()} (stand-in: synthetic real-vs-fake digits, not faces)")
        return 0
    dest = Path(args.dest) if args.dest else bundled_data_dir()
    kwargs = {} if args.faces_difficulty is None else {"difficulty": args.faces_difficulty}
    europe = bundled.build_europe(dest / "europe")
    faces = bundled.build_faces(dest / "faces", **kwargs)
    print(f"europe: {europe}")
    print(f"faces:  {faces} (stand-in: synthetic real-vs-fake digits, not faces)")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from ex4.data.europe import summarize_europe
    from ex4.data.faces import summarize_faces

    folder = Path(args.directory)
    summary = summarize_europe(folder) if args.kind == "europe" else summarize_faces(folder)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ex4 import params
    from ex4.experiments import registry, run_seeds
    from ex4.store import Store, json_safe

    if args.experiment == "list":
        for name, experiment in registry().items():
            print(f"{name:16s} {experiment.summary}")
        return 0
    values = params.resolve_cli(args.params, args.set or [])
    names = list(registry()) if args.experiment == "all" else [args.experiment]
    outputs = []
    for name in names:  # with seed_repeats > 1, a result per seed (Sections 6 and 7)
        outcomes = run_seeds(name, values, Store(args.store) if args.store else None)[name]
        for outcome in outcomes:
            state = "stored" if outcome.hit else f"computed in {outcome.wall_time:.1f} s"
            # Section 6 results name their seed; every result's store-key parameters do
            result_seed = outcome.result.get("seed", (outcome.meta.get("params") or {}).get("seed"))
            seed = f" (seed {result_seed})" if len(outcomes) > 1 else ""
            print(f"{name}{seed}: result {outcome.key} ({state})", file=sys.stderr)
            outputs.append({"experiment": name, "key": outcome.key, "stored": outcome.hit,
                            **({"seed": result_seed} if len(outcomes) > 1 else {}),
                            "runs": outcome.result.get("runs", [])})
    if args.json:
        payload = outputs[0] if len(outputs) == 1 else outputs
        print(json.dumps(json_safe(payload), indent=1))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from ex4.store import Store

    store = Store(args.store) if args.store else Store()
    store.check_folder()
    if args.action == "ls":
        rows = store.entries()
        if not rows:
            print(f"no stored results in {store.root}")
        for row in rows:
            summary = ", ".join(f"{key}={value}" for key, value in sorted((row.get("params") or {}).items())
                                if not isinstance(value, list))
            print(f"{row.get('experiment', '?'):16s} {row['key']}  {row.get('created', '?'):25s} "
                  f"{row['size'] / 1e6:7.2f} MB  {'CORRUPT ' if row.get('corrupt') else ''}{summary}")
    elif args.action == "rm":
        if not args.key:
            raise Ex4Error("ex4 results rm: give the KEY (or a unique prefix) to remove; see `ex4 results ls`")
        store.remove(args.key)
        print(f"removed {args.key}")
    else:
        removed = store.prune()
        print(f"pruned {len(removed)} result(s)" + (": " + ", ".join(removed) if removed else ""))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from ex4.paths import project_root
    from ex4 import render as book

    from ex4.store import Store

    root = project_root()
    if args.store:
        Store(args.store).check_folder()
        os.environ["EX4_STORE"] = str(Path(args.store).resolve())
    if args.chapter:
        from ex4.params import parse_assignment

        overrides = {**dict(book.parse_param_assignment(text) for text in args.P or []),
                     **dict(parse_assignment(text) for text in args.set or [])}
        folder = book.render_chapter(Path(args.chapter), overrides, root, params_file=args.params,
                                     renderer=args.renderer, fresh=args.fresh)
        print(f"chapter rendered into {folder}")
        return 0
    if args.P:
        raise Ex4Error("-P overrides apply to one chapter: add --chapter report/<chapter>.qmd, or use --params FILE "
                       "or --set NAME=VALUE for the whole book")
    from ex4.params import parse_assignment

    overrides = dict(parse_assignment(text) for text in args.set or [])
    result = book.render_book(root, params_file=Path(args.params) if args.params else None,
                              out_dir=Path(args.out) if args.out else None, renderer=args.renderer,
                              overrides=overrides, fresh=args.fresh,
                              formats=("html",) if args.to == "html" else ("html", "pdf"))
    made = f"{result.html_index} and {result.pdf}" if result.pdf else str(result.html_index)
    print(f"book rendered by {result.renderer}: {made}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from ex4.params import parse_assignment
    from ex4.paths import project_root
    from ex4.render.preview import preview
    from ex4.store import Store

    if args.store:
        Store(args.store).check_folder()
        os.environ["EX4_STORE"] = str(Path(args.store).resolve())
    if args.params and not Path(args.params).is_file():
        raise Ex4Error(f"--params {args.params}: file not found")
    overrides = dict(parse_assignment(text) for text in args.set or [])
    preview(project_root(), params_file=Path(args.params) if args.params else None, overrides=overrides,
            port=args.port, out_dir=Path(args.out) if args.out else None)
    return 0


# ---- parser --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ex4", description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="result store folder (default: $EX4_STORE or <project>/.ex4/store)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build the bundled data sets or check your own")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    build = data_commands.add_parser("build", help="build both bundled sets offline (byte-identical on rebuild)")
    build.add_argument("--dest", help="destination folder (default: <project>/.ex4/data)")
    build.add_argument("--faces-difficulty", type=float, help="difficulty knob of the stand-in image set")
    build.add_argument("--if-missing", action="store_true", help="only build a default set that is absent or invalid")
    build.set_defaults(handler=cmd_data_build)
    check = data_commands.add_parser("check", help="validate a data set and print its counts")
    check.add_argument("kind", choices=["europe", "faces"])
    check.add_argument("directory")
    check.set_defaults(handler=cmd_data_check)

    run = commands.add_parser("run", help="run an experiment (from the store when its result is there)")
    run.add_argument("experiment", help="experiment name, 'all', or 'list'")
    run.add_argument("--params", help="YAML parameter profile (e.g. params/smoke.yml)")
    run.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one parameter (YAML value)")
    run.add_argument("--json", action="store_true", help="print the runs as JSON on stdout")
    run.set_defaults(handler=cmd_run)

    results = commands.add_parser("results", help="list, remove or prune stored results")
    results.add_argument("action", choices=["ls", "rm", "prune"])
    results.add_argument("key", nargs="?")
    results.set_defaults(handler=cmd_results)

    render = commands.add_parser("render", help="render the book (HTML + PDF) or one chapter variant")
    render.add_argument("--params", help="YAML parameter profile for every chapter")
    render.add_argument("--chapter", help="render only this chapter into its own variant folder")
    render.add_argument("-P", action="append", metavar="NAME:VALUE", help="chapter parameter override")
    render.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="override one parameter in every chapter that declares it (YAML value)")
    render.add_argument("--renderer", choices=["auto", "quarto", "ex4"], default="auto")
    render.add_argument("--out", help="output folder of the book (default: <project>/_book)")
    render.add_argument("--fresh", action="store_true",
                        help="execute every chapter, ignoring the chapter cache (which is refreshed)")
    render.add_argument("--to", choices=["all", "html"], default="all",
                        help="html: the HTML pages only, no PDF (faster while writing)")
    render.set_defaults(handler=cmd_render)

    live = commands.add_parser("preview", help="serve the book on 127.0.0.1, re-render on every edit, reload the page")
    live.add_argument("--params", help="YAML parameter profile for every chapter")
    live.add_argument("--set", action="append", metavar="NAME=VALUE",
                      help="override one parameter in every chapter that declares it (YAML value)")
    live.add_argument("--port", type=int, default=4848, help="port on 127.0.0.1 (default 4848; 0 picks a free one)")
    live.add_argument("--out", help="output folder of the book (default: <project>/_book)")
    live.set_defaults(handler=cmd_preview)
    return parser


class _Warnings:
    """While a command runs: ex4's own warnings (`Ex4Warning`) print at once as one line each; warnings from
    libraries (Pillow, torch, scikit-learn, ...) are held back, so that none can precede or hide ex4's own
    line, and are printed one line each after a command that succeeded (--debug shows them as Python does)."""

    def __init__(self):
        self.held: list[str] = []

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG002
        from ex4.errors import Ex4Warning

        text = " ".join(str(message).split())
        if issubclass(category, Ex4Warning):
            print(f"ex4: warning: {text}", file=sys.stderr)
        else:
            module = Path(filename).parent.name if filename else "?"
            self.held.append(f"ex4: note: {category.__name__} from {module}: {_without_unsafe_advice(text)}")

    def flush(self) -> None:
        for text in dict.fromkeys(self.held):  # each distinct warning once
            print(text[:500], file=sys.stderr)
        self.held.clear()


def _without_unsafe_advice(text: str) -> str:
    """A library message minus advice to turn off a safety check (torch's `weights_only=False`)."""
    if "weights_only" in text:
        from ex4.errors import torch_load_detail

        return torch_load_detail(Exception(text))
    return text


def _out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return type(error).__name__ == "OutOfMemoryError" or (
        isinstance(error, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    with _terminate_as_interrupt():
        if args.debug:  # everything as Python shows it, tracebacks included
            return _run(args)
        held = _Warnings()
        previous = warnings.showwarning
        warnings.showwarning = held.show
        try:
            status = _run(args)
        finally:
            warnings.showwarning = previous
    if status == 0:
        held.flush()
    return status


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _on_terminate(signum, frame) -> None:
    raise _Terminated()


class _terminate_as_interrupt:
    """SIGTERM stops a command as Ctrl-C does (`kill`, a batch system at its time limit, a process manager): the
    running runs stop, nothing half-written stays, `ex4 preview` closes its server. A background job started by a
    non-interactive shell ignores SIGINT, so SIGTERM is how such a job is stopped cleanly. Only in the main thread
    (signal handlers live there); the previous handler comes back afterwards."""

    def __enter__(self):
        import signal
        import threading

        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _on_terminate)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except Ex4Error as error:
        if args.debug:
            raise
        print(f"ex4: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except _Terminated:
        print("ex4: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("ex4: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the final flush
        return 0
    except MemoryError as error:  # an allocation failed: the sizes asked for more than this machine has
        if args.debug:
            raise
        detail = f" ({' '.join(str(error).split())[:200]})" if str(error) else ""
        print(f"ex4: error: not enough memory{detail}; lower the size parameters (cnn_image_size, batch sizes, "
              "widths, mlp_region_grid) or the amount of data", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:  # the environment: a full disk, a read-only or vanished folder, ...
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"ex4: error: {where}{error.strerror or ' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # an ex4 bug, not bad input: still one line unless --debug
        if args.debug:
            raise
        if _out_of_memory(error):  # torch reports a failed allocation as a RuntimeError
            print(f"ex4: error: not enough memory ({_first_line(error)}); lower the size parameters "
                  "(cnn_image_size, batch sizes, widths, mlp_region_grid) or the amount of data", file=sys.stderr)
            return EXIT_USER_ERROR
        message = " ".join(str(error).split())
        print(f"ex4: internal error: {type(error).__name__}: {message} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
