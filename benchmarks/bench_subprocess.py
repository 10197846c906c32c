"""Run one fresh Python process and measure it: wall time, peak resident memory, JSON output.

Peak memory is the child's own high-water resident set, ``VmHWM`` from
``/proc/self/status``, which the child prints as its last act. JAX and the peers allocate
natively, so tracemalloc would miss most of it. ``ru_maxrss`` (from ``getrusage`` or
``wait4``) is NOT usable here: Linux keeps a process's ``maxrss`` across ``exec``, so a child
forked from this benchmark process (JAX loaded, ~0.5 GB) reports at least the parent's size.
The ``wait4`` figure is kept as ``rusage_maxrss_mib`` for reference and used only where
``VmHWM`` is unavailable (not Linux). The child reports results as JSON lines on stdout;
every line it managed to print is kept even when it hits the timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ChildResult:
    returncode: int | None
    wall_s: float
    rusage_maxrss_mib: float | None
    timed_out: bool
    records: list[dict] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def peak_rss_mib(self) -> float | None:
        """The child's peak resident memory (VmHWM it reported; wait4's off Linux)."""
        peak = self.last("peak_rss_mib")
        if peak is None and not os.path.exists("/proc/self/status"):
            return self.rusage_maxrss_mib
        return peak

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def last(self, key: str, default=None):
        """The value of ``key`` in the last JSON record that has it."""
        for rec in reversed(self.records):
            if key in rec:
                return rec[key]
        return default

    def failure(self) -> str:
        """Short reason why the child did not finish cleanly."""
        if self.timed_out:
            return "timeout"
        lines = [ln for ln in self.stderr_tail.strip().splitlines() if ln.strip()]
        return f"failed (rc {self.returncode}): {lines[-1][:120] if lines else 'no stderr'}"


def run_child(args: list[str], env: dict[str, str], timeout: float, cwd: str | None = None
              ) -> ChildResult:
    """Run ``[sys.executable, *args]``; wall time covers interpreter start to exit."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, env=env,
                                cwd=cwd, start_new_session=True)
        waited: dict = {}

        def reap():  # blocks until the child exits; wait4 gives that child's own rusage
            _, status, usage = os.wait4(proc.pid, 0)
            waited.update(t=time.perf_counter(), status=status, usage=usage)

        reaper = threading.Thread(target=reap, daemon=True)
        reaper.start()
        reaper.join(timeout)
        timed_out = reaper.is_alive()
        if timed_out:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own session only
            except ProcessLookupError:
                pass
            reaper.join()
        proc.returncode = os.waitstatus_to_exitcode(waited["status"])  # keep Popen quiet
        wall = waited["t"] - t0
        out.seek(0)
        err.seek(0)
        records = []
        for line in out.read().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return ChildResult(
            returncode=proc.returncode,
            wall_s=wall,
            rusage_maxrss_mib=waited["usage"].ru_maxrss / 1024,  # Linux reports KiB
            timed_out=timed_out,
            records=records,
            stderr_tail=err.read()[-4000:],
        )


def peak_rss_mib() -> float | None:
    """This process's peak resident set (``VmHWM``), MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


#: Code for a cold jaxmm fit, run as ``python -c``: import, load data, fit, report.
COLD_FIT = """\
import json, time
t0 = time.perf_counter()
import jaxmm
t1 = time.perf_counter()
df = jaxmm.datasets.load({dataset!r})
t2 = time.perf_counter()
m = jaxmm.lmer({formula!r}, df, reml=True)
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "fit_s": t3 - t2,
                  "objective": m.objective, "n_eval": m.opt.n_eval}}), flush=True)
hwm = [ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
print(json.dumps({{"peak_rss_mib": int(hwm[0]) / 1024 if hwm else None}}), flush=True)
"""


def ensure_bytecode(package_dir: str) -> str:
    """Compile the package's modules to bytecode (``__pycache__``), as ``pip install`` does,
    and say so. An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines)
    has none, and every fresh process then compiles jaxmm's ~90 modules from source (~60 ms
    of a cold start that an installed package does not pay)."""
    import compileall

    ok = compileall.compile_dir(package_dir, quiet=1)
    how = "compiled" if ok else "compiled with errors"
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return (f"jaxmm's modules {how} to bytecode before the cold runs, as an installed package is"
            + (f" (PYTHONDONTWRITEBYTECODE={flag} here)" if flag else ""))


def cold_jaxmm(dataset: str, formula: str, env: dict[str, str], timeout: float,
               cwd: str | None = None) -> ChildResult:
    """One fresh-process jaxmm fit (import + data + compile or cache load + fit)."""
    code = COLD_FIT.format(dataset=dataset, formula=formula)
    return run_child(["-c", code], env, timeout, cwd=cwd)


def cache_entries(cache_home: str) -> int:
    """Number of files jaxmm's persistent compilation cache holds under ``cache_home``."""
    n = 0
    for _, _, files in os.walk(os.path.join(cache_home, "jaxmm", "xla")):
        n += len(files)
    return n
