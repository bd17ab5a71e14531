"""Load generators: ``wrk`` when installed, else a small keep-alive Python one.

Both return a :class:`LoadResult` (requests/second, latency percentiles, status counts). The
Python generator runs ``processes`` subprocesses of this file, each with ``threads`` keep-alive
connections (``http.client``); it is also the only one that can send from another loopback
source address (``source_address``), which the attack benchmark uses.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_common import percentile


@dataclass
class LoadResult:
    tool: str
    requests: int
    duration: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def non2xx(self) -> int:
        return sum(v for k, v in self.statuses.items() if not k.startswith("2"))


def wrk_path() -> str | None:
    return shutil.which("wrk")


def choose(tool: str) -> str:
    if tool == "auto":
        return "wrk" if wrk_path() else "python"
    if tool == "wrk" and not wrk_path():
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --loadgen python")
    return tool


def run_load(
    url: str,
    *,
    path: str = "/hello",
    headers: dict[str, str] | None = None,
    duration: float,
    connections: int = 8,
    ids_file: str | None = None,
    id_header: str = "",
    secret_header: str = "",
    secret: str = "",
    count_statuses: bool = False,
    source_address: str | None = None,
    processes: int | None = None,
    tool: str = "auto",
    vary_header: str | None = None,
) -> LoadResult:
    """Hit ``url + path`` for ``duration`` seconds over ``connections`` keep-alive connections.

    With ``ids_file`` each request picks a random client ID from the file (one per line) and
    sends it with ``secret``. With ``vary_header`` the last 8 characters of that header's
    value are random hex digits, new on every request (a guessing attack's secrets).
    """
    tool = "python" if (source_address or processes or vary_header) else choose(tool)
    if tool == "wrk":
        return _run_wrk(
            url,
            path,
            headers or {},
            duration,
            connections,
            ids_file,
            id_header,
            secret_header,
            secret,
            count_statuses,
        )
    return _run_python(
        url,
        path,
        headers or {},
        duration,
        connections,
        ids_file,
        id_header,
        secret_header,
        secret,
        source_address,
        processes,
        vary_header,
    )


# -- wrk ------------------------------------------------------------------------------------
_LUA_COMMON = r"""
counts = {}
local threads = {}
local n = 0
function setup(thread)
  n = n + 1
  thread:set("seed", n)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    if c then for k, v in pairs(c) do merged[tostring(k)] = (merged[tostring(k)] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, ' ..
    '"p50": %.1f, "p90": %.1f, "p99": %.1f, "mean": %.1f, "max": %.1f, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    table.concat(parts, ", ")))
end
"""

_LUA_COUNT = r"""
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
"""

_LUA_IDS = r"""
local ids = {}
local path, id_header, secret_header, secret
function init(args)
  path, id_header, secret_header, secret = args[2], args[3], args[4], args[5]
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  math.randomseed((seed or 1) * 7919 + os.time())
end
function request()
  local h = {}
  h[id_header] = ids[math.random(#ids)]
  h[secret_header] = secret
  return wrk.format("GET", path, h)
end
"""


def _run_wrk(
    url: str,
    path: str,
    headers: dict[str, str],
    duration: float,
    connections: int,
    ids_file: str | None,
    id_header: str,
    secret_header: str,
    secret: str,
    count_statuses: bool,
) -> LoadResult:
    script = _LUA_COMMON + (_LUA_COUNT if count_statuses else "") + (_LUA_IDS if ids_file else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        script_path = fh.name
    try:
        cmd = [
            wrk_path() or "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            script_path,
        ]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(url + path)
        if ids_file:
            cmd += ["--", ids_file, path, id_header, secret_header, secret]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    finally:
        os.unlink(script_path)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed (exit {out.returncode}): {out.stderr.strip()[-500:]} {out.stdout[-500:]}")
    data = json.loads(line[len("WRKJSON ") :])
    secs = data["duration_us"] / 1e6
    statuses = {k: int(v) for k, v in data["statuses"].items()}
    if not statuses:  # not counted per status: wrk only knows 2xx/3xx versus the rest
        statuses = {"2xx": data["requests"] - data["non2xx"], "other": data["non2xx"]}
    return LoadResult(
        tool="wrk",
        requests=data["requests"],
        duration=secs,
        rps=data["requests"] / secs if secs else 0.0,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        mean_ms=data["mean"] / 1000,
        max_ms=data["max"] / 1000,
        statuses=statuses,
        errors=data["errors"],
    )


# -- the Python generator -------------------------------------------------------------------
def _run_python(
    url: str,
    path: str,
    headers: dict[str, str],
    duration: float,
    connections: int,
    ids_file: str | None,
    id_header: str,
    secret_header: str,
    secret: str,
    source_address: str | None,
    processes: int | None = None,
    vary_header: str | None = None,
) -> LoadResult:
    processes = processes or max(1, min(connections, os.cpu_count() or 1, 4))
    per_proc = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    job = {
        "url": url, "path": path, "headers": headers, "duration": duration, "ids_file": ids_file,
        "id_header": id_header, "secret_header": secret_header, "secret": secret, "source": source_address,
        "vary_header": vary_header,
    }  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps({**job, "threads": n})],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in per_proc
        if n
    ]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    rps = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=duration + 60)
        if p.returncode != 0:
            raise RuntimeError(f"python load generator failed (exit {p.returncode})")
        data = json.loads(out)
        latencies.extend(data["latencies"])
        statuses.update(data["statuses"])
        errors += data["errors"]
        rps += len(data["latencies"]) / data["elapsed"] if data["elapsed"] else 0.0
    latencies.sort()
    total = len(latencies)
    return LoadResult(
        tool="python",
        requests=total,
        duration=duration,
        rps=rps,
        p50_ms=percentile(latencies, 50) * 1000,
        p90_ms=percentile(latencies, 90) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        mean_ms=(sum(latencies) / total * 1000) if total else float("nan"),
        max_ms=(latencies[-1] * 1000) if total else float("nan"),
        statuses=dict(statuses),
        errors=errors,
    )


def _worker(job: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(job["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ids = None
    if job["ids_file"]:
        with open(job["ids_file"], encoding="ascii") as fh:
            ids = fh.read().split()
    source = (job["source"], 0) if job["source"] else None
    end_at = time.perf_counter() + job["duration"]
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = [0]

    def loop(seed: int) -> None:
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection(host, port, timeout=10, source_address=source)
        lat: list[float] = []
        st: Counter[str] = Counter()
        err = 0
        headers = dict(job["headers"])
        vary = job.get("vary_header")
        vary_base = headers.get(vary, "")[:-8] if vary else ""
        clock = time.perf_counter
        while True:
            start = clock()
            if start >= end_at:
                break
            if ids is not None:
                headers[job["id_header"]] = ids[rnd.randrange(len(ids))]
                headers[job["secret_header"]] = job["secret"]
            if vary is not None:
                headers[vary] = vary_base + f"{rnd.getrandbits(32):08x}"
            try:
                conn.request("GET", job["path"], headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                err += 1
                conn.close()
                time.sleep(0.001)
                continue
            lat.append(clock() - start)
            st[str(resp.status)] += 1
        conn.close()
        with lock:
            latencies.extend(lat)
            statuses.update(st)
            errors[0] += err

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(os.getpid() * 100 + i,)) for i in range(job["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    json.dump({"latencies": latencies, "statuses": statuses, "errors": errors[0], "elapsed": elapsed}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: loadgen.py --worker JSON (used by run.py)")
