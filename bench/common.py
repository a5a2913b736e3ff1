"""Helpers the bench scripts share: where the binary is, timing commands, pipelines of `true`
tasks, a server started and stopped, HTTP requests, and summaries of repeated measurements.

Every script takes the binary from `BATON_BIN` (default: target/release/baton of this
checkout), so another build can be timed without copying it here.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATON = os.environ.get("BATON_BIN", os.path.join(ROOT, "target", "release", "baton"))


def require_baton():
    if not os.path.exists(BATON):
        sys.exit(f"no baton at {BATON}: cargo build --release -p baton, or set BATON_BIN")


def load_average():
    """The 1-minute load average: the figures are only as good as the machine was quiet."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def timed(cmd, **kw):
    """Wall seconds of `cmd`, which must succeed."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, round((len(sorted_values) - 1) * q))]


def spread(values, unit="s", scale=1.0, digits=3):
    """`min–max (median)` of repeated measurements."""
    v = sorted(x * scale for x in values)
    mid = v[len(v) // 2]
    return f"{v[0]:.{digits}f}–{v[-1]:.{digits}f} {unit} (median {mid:.{digits}f})"


def write_pipeline(path, name, tasks):
    """A pipeline file of `tasks`, a list of (id, run, needs) in file order."""
    with open(path, "w") as f:
        f.write(f"name: {name}\ntasks:\n")
        for task, run, needs in tasks:
            f.write(f"  {task}:\n    run: {json.dumps(run)}\n")
            if needs:
                f.write(f"    needs: [{', '.join(needs)}]\n")
    return path


def chain(path, n, run="true", name="chain"):
    """`n` tasks, each needing the one before."""
    return write_pipeline(path, name, [(f"t{i}", run, [f"t{i-1}"] if i else []) for i in range(n)])


def independent(path, n, run="true", name="independent"):
    """`n` tasks that need nothing."""
    return write_pipeline(path, name, [(f"t{i}", run, []) for i in range(n)])


def fanout(path, n, name="fanout"):
    """One `for_each` task of `n` instances running `true`."""
    with open(path, "w") as f:
        f.write(f"name: {name}\ntasks:\n  work:\n    for_each: ["
                + ", ".join(str(i) for i in range(n)) + "]\n    run: \"true\"\n")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn, method, path, body=None):
    """(status, parsed JSON) of one request on a kept-alive `http.client` connection."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None


def fetch(url, method="GET", body=None, timeout=120):
    """(seconds, bytes, parsed JSON) of one request on a new connection."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", "accept": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return time.perf_counter() - start, len(raw), json.loads(raw)


class Server:
    """A `baton server` on a free port, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, args, log_path, cwd=None, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.base + "/api/v1"
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [BATON, *args, "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
        )

    def wait_up(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"baton server exited with {self.proc.returncode} (log: {self.log.name})")
            try:
                fetch(self.base + "/healthz", timeout=5)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        sys.exit(f"baton server did not come up in {seconds} s (log: {self.log.name})")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path
