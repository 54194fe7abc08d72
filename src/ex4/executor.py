"""Where the independent runs of an experiment are computed: in this process, or as tasks on a Dask cluster.

ex4 schedules nothing itself. `executor: local` computes runs here, as it always has. `executor: dask` hands
every missing run to `distributed` as one task (`Client.submit`): Dask places it on a worker, retries it
elsewhere when a worker dies, and the client shows one progress bar over the futures as they complete. A
task does its own store write on the worker (the store's staging, rename and file lock make that atomic and
keep two clients from training one key twice), so what comes back over the network is only the store key;
the client then reads the result from the store like any other hit. That is why the store must be on a
filesystem every worker sees: `connect` checks it on every worker before any task is sent, by reading a
token file the client has just written and writing one of its own.

`dask_scheduler` says which cluster: `local:N` starts a `distributed.LocalCluster` of N worker processes on
127.0.0.1 with the machine's cores split between them (closed when this process exits), `tcp://host:port`
connects to a scheduler that is already running (`dask scheduler` + `dask worker`, or `dask-jobqueue`'s
`SLURMCluster`). One client per scheduler address is kept for the life of the process, so the experiments a
chapter runs share it.

A task may depend on other tasks of the same sweep (`Task.deps`: a Section 7 run on the task that pretrains
its backbone): their futures are passed to it, so Dask starts it once they are done and fails it when one of
them fails. Locally, `LocalExecutor.compute(tasks, workers=N)` runs them on N threads of this process, each task
once the tasks it depends on are done (N = 1: one after another in their listed order). That small loop is
written here rather than borrowed because the thread pool of the standard library has no dependencies between
jobs and Dask is an optional extra; it schedules nothing beyond "start what is ready, stop at the first error".
Ctrl-C (or a failed task) sets `CANCELLED`, which the training loops check between steps, so the running tasks
stop within a step and store nothing.

The numbers do not depend on the executor: a task trains exactly what the local path trains for that run, from
the same seed and with the same number of torch threads (one per task: Section 7's runs share out the cores by
whole runs, on a worker as here, since the intra-op thread count changes a network's rounding), and the store
key of a run does not mention where it ran.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ex4.cancel import CANCELLED, Cancelled
from ex4.errors import Ex4Error

SCHEDULER = re.compile(r"^(local:(?P<workers>[0-9]+)|(?P<address>(tcp|tls|inproc|ws|wss)://\S+))$")
MAX_LOCAL_WORKERS = 256
CONNECT_TIMEOUT_S = 10
# how often Dask may lose a worker under one task before giving up on it (its `allowed-failures` is 3)
TASK_RETRIES = 2


def check_scheduler(value: Any) -> str:
    """Validate a `dask_scheduler` value (a params checker: raises ValueError with what is wrong)."""
    if not isinstance(value, str):
        raise ValueError("expected 'local:N' or a scheduler address such as 'tcp://host:8786'")
    match = SCHEDULER.match(value.strip())
    if not match:
        raise ValueError("expected 'local:N' (N worker processes on this machine) or 'tcp://host:port'")
    if match.group("workers") is not None and not 1 <= int(match.group("workers")) <= MAX_LOCAL_WORKERS:
        raise ValueError(f"local:N needs 1 <= N <= {MAX_LOCAL_WORKERS}")
    return value.strip()


@dataclass(frozen=True)
class Task:
    """One independent run: `fn(*args)` computes it, stores it and returns its store key.

    `key` is the run's store key, used as the Dask key too: the same run asked for twice in one sweep is one
    task. `fn` must be a module-level function (workers import it by name). `deps` are the keys of tasks of the
    same sweep that must be done first (a run that needs a pretrained backbone after the task that pretrains
    it); they come earlier in the list. On Dask they are passed to the task as its dependency futures, so
    Dask itself waits for them; the task reads what they stored from the store."""

    key: str
    fn: Callable[..., str]
    args: tuple
    label: str = ""
    deps: tuple[str, ...] = ()


def check_order(tasks: Sequence[Task]) -> None:
    """ValueError unless every task's `deps` name tasks listed before it (a programming error, not user input)."""
    seen: set[str] = set()
    for task in tasks:
        missing = [dep for dep in task.deps if dep not in seen]
        if missing:
            raise ValueError(f"task {task.label or task.key} depends on {missing[0]}, which is not an earlier task")
        seen.add(task.key)


def after(fn: Callable[..., str], args: tuple, *done: str) -> str:
    """`fn(*args)`, once the tasks whose results are `done` have finished (Dask resolves them before the call)."""
    return fn(*args)


@dataclass
class LocalExecutor:
    """Runs tasks in this process: one after another, or on `workers` threads, each once its deps are done."""

    name: str = "local"
    submitted: int = 0

    @property
    def distributed(self) -> bool:
        return False

    def compute(self, tasks: Sequence[Task], progress: str | None = None, workers: int = 1) -> list[str]:
        """Run the tasks (dependencies come first in the list) and return their keys in order.

        With `workers` > 1 they run on that many threads: a task starts once every task it depends on is done,
        in list order among those ready. The first failure (or Ctrl-C) stops the sweep: no new task starts, the
        running ones stop at their next step (`CANCELLED`), and the failure is raised once they have."""
        check_order(tasks)
        unique: dict[str, Task] = {}
        for task in tasks:
            unique.setdefault(task.key, task)
        self.submitted += len(unique)
        if workers <= 1 or len(unique) <= 1:
            done: dict[str, str] = {}
            for key, task in unique.items():
                done[key] = task.fn(*task.args)
            return [done[task.key] for task in tasks]
        return self._compute_threads(list(unique.values()), tasks, workers)

    def _compute_threads(self, unique: list[Task], tasks: Sequence[Task], workers: int) -> list[str]:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        done: dict[str, str] = {}
        waiting = list(unique)
        running: dict[Any, Task] = {}
        failure: BaseException | None = None
        CANCELLED.clear()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ex4-run")
        try:
            while waiting or running:
                if failure is None:
                    for task in [task for task in waiting if all(dep in done for dep in task.deps)]:
                        if len(running) >= workers:
                            break
                        waiting.remove(task)
                        running[pool.submit(task.fn, *task.args)] = task
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    error = future.exception()
                    if error is None:
                        done[task.key] = future.result()
                    elif failure is None or isinstance(failure, Cancelled):
                        failure = error
                        CANCELLED.set()
        except BaseException:  # Ctrl-C while waiting: stop the running tasks at their next step
            CANCELLED.set()
            pool.shutdown(wait=True, cancel_futures=True)
            CANCELLED.clear()
            raise
        pool.shutdown(wait=True)
        CANCELLED.clear()
        if failure is not None:
            raise failure
        return [done[task.key] for task in tasks]


@dataclass
class DaskExecutor:
    """Tasks as futures on a Dask cluster; the store path is checked on every worker when connecting."""

    scheduler: str
    client: Any
    cluster: Any = None
    checked_stores: set[str] = field(default_factory=set)
    submitted: int = 0

    name: str = "dask"

    @property
    def distributed(self) -> bool:
        return True

    def check_store(self, store_root: Path) -> None:
        """Every worker must see and be able to write the store (a shared filesystem); else one line."""
        root = str(Path(store_root).resolve())
        if root in self.checked_stores:
            return
        probes = Path(root) / ".tmp"
        try:
            probes.mkdir(parents=True, exist_ok=True)
            token = secrets.token_hex(8)
            (probes / f"probe-{token}").write_text(token)
        except OSError as error:
            raise Ex4Error(f"store {root}: cannot write: {error.strerror or error}") from None
        try:
            answers = self.client.run(_probe_store, root, token)
        except Exception as error:  # a worker that died between connecting and now
            raise Ex4Error(f"dask_scheduler {self.scheduler}: workers did not answer the store check: {error}") from None
        finally:
            (probes / f"probe-{token}").unlink(missing_ok=True)
        problems = {worker: answer for worker, answer in answers.items() if answer}
        if problems:
            worker, answer = sorted(problems.items())[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise Ex4Error(f"store {root}: dask worker {worker}{more} {answer}; the store must be on a "
                           "filesystem every worker shares (--store or $EX4_STORE)")
        self.checked_stores.add(root)

    def compute(self, tasks: Sequence[Task], progress: str | None = None) -> list[str]:
        """Submit every task, wait for all of them, return their keys in order (a failed task raises).

        A task with `deps` gets their futures as arguments (through `after`), so Dask starts it once they are
        done and fails it when one of them fails."""
        from distributed import as_completed

        check_order(tasks)
        unique: dict[str, Task] = {}
        for task in tasks:
            unique.setdefault(task.key, task)
        futures: dict[str, Any] = {}
        for key, task in unique.items():
            options = {"key": f"ex4-{key}", "retries": TASK_RETRIES, "pure": False}
            if task.deps:
                futures[key] = self.client.submit(after, task.fn, task.args, *(futures[dep] for dep in task.deps),
                                                  **options)
            else:
                futures[key] = self.client.submit(task.fn, *task.args, **options)
        self.submitted += len(futures)
        bar = _progress_bar(len(futures), progress)
        try:
            for future in as_completed(list(futures.values())):
                if future.status == "error":
                    error = future.exception()
                    if isinstance(error, Ex4Error):
                        raise Ex4Error(str(error)) from None
                    raise error
                bar.update(1)
        finally:
            bar.close()
        done = {key: future.result() for key, future in futures.items()}
        return [done[task.key] for task in tasks]


def _progress_bar(total: int, label: str | None):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"{label or 'runs'} (dask)", unit="run", file=sys.stderr, mininterval=1.0,
                delay=2.0, disable=None)


def _probe_store(root: str, token: str) -> str:
    """On a worker: '' when the store is shared and writable here, else what is wrong (runs via Client.run)."""
    probe = Path(root) / ".tmp" / f"probe-{token}"
    try:
        if probe.read_text() != token:
            return "sees another store at that path"
    except OSError:
        return "cannot see the store at that path"
    mine = Path(root) / ".tmp" / f"probe-{token}-{os.getpid()}"
    try:
        mine.write_text(token)
        mine.unlink()
    except OSError as error:
        return f"cannot write the store: {error.strerror or error}"
    return ""


_EXECUTORS: dict[str, DaskExecutor] = {}
_LOCAL = LocalExecutor()


def executor_for(executor: str, scheduler: str) -> LocalExecutor | DaskExecutor:
    """The executor that parameters `executor` and `dask_scheduler` name (connecting once per process)."""
    if executor == "local":
        return _LOCAL
    if executor != "dask":
        raise Ex4Error(f"parameter 'executor' = {executor!r}: expected local or dask")
    scheduler = check_scheduler(scheduler)
    if scheduler not in _EXECUTORS:
        _EXECUTORS[scheduler] = connect(scheduler)
    return _EXECUTORS[scheduler]


def connect(scheduler: str) -> DaskExecutor:
    try:
        import distributed
    except ImportError:
        raise Ex4Error("executor: dask needs the dask extra: pip install 'ex4[dask]' "
                       "(dask[distributed])") from None
    match = SCHEDULER.match(scheduler)
    assert match is not None
    cluster = None
    try:
        if match.group("workers") is not None:
            workers = int(match.group("workers"))
            threads = max(1, (os.cpu_count() or 1) // workers)
            # worker processes, not threads: a run holds the GIL in places, and a killed worker is one run lost
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                               host="127.0.0.1", dashboard_address=":0",
                                               silence_logs=40)  # logging.ERROR: warnings go to Dask's log only
            client = distributed.Client(cluster, timeout=f"{CONNECT_TIMEOUT_S}s")
        else:
            client = distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise Ex4Error(f"dask_scheduler {scheduler}: cannot connect: {reason}") from None
    executor = DaskExecutor(scheduler, client, cluster)
    atexit.register(_close, executor)
    return executor


def _close(executor: DaskExecutor) -> None:
    try:
        executor.client.close()
        if executor.cluster is not None:
            executor.cluster.close()
    except Exception:  # pragma: no cover - best effort at interpreter exit
        pass


def close_all() -> None:
    """Close every client and LocalCluster this process started (tests, long-lived callers)."""
    for scheduler in list(_EXECUTORS):
        _close(_EXECUTORS.pop(scheduler))
