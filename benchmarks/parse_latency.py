#!/usr/bin/env python3
"""Measure Rasa ``/model/parse`` latency and the Rasa server's memory.

Either connects to a running server (``--url http://127.0.0.1:5005``, optionally ``--pid`` to
read its memory) or starts one itself on 127.0.0.1 (a free port) with

    <rasa venv>/bin/rasa run --enable-api -m <model> -i 127.0.0.1 -p <port>

using ``scripts/rasa-env.sh`` for the venv and ``scripts/rasa-train.sh`` for the model (trained
if missing, unless ``--model`` is given). Sends N Chinese messages (default 500; taken from
nlu/**/*.yml with entity markup stripped, plus Traditional-Chinese and noisy samples) first
sequentially, then with a few concurrent clients, and prints p50/p95/p99/max latency,
throughput, and the server's VmRSS/VmHWM from /proc/<pid>/status.

Runs with the app's Python 3.11 (plain HTTP client; stdlib only, PyYAML if present).

    python benchmarks/parse_latency.py                      # start a server, 500 msgs
    python benchmarks/parse_latency.py --url http://127.0.0.1:5005 --pid 1234
    python benchmarks/parse_latency.py -n 200 --concurrency 1,4 --json reports/parse-latency.json

Traffic goes to loopback only; every loop is bounded by -n and --timeout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# benchmarks/common.py: the script's own folder is first on sys.path
from common import REPO, pct, rasa_env, rasa_venv, script_last_line

EXTRA_MESSAGES = [
    "電梯壞了三天了",
    "我們小區的路燈晚上不亮，老人走路很危險",
    "樓上漏水漏到我家廁所了，物業不管",
    "請問開居住證明要帶什麼材料",
    "隔壁裝修太吵了 晚上十一點還在打電鑽",
    "垃圾桶滿了沒人清理 臭死了",
    "我媽一個人住 想申請助餐服務",
    "你好",
    "謝謝你們",
    "轉人工",
    "我的工单处理到哪一步了",
    "５栋２单元电梯又停了 电话１３９７１２３４５６７",
    "asdfgh",
    "今天天气怎么样",
]


def log(msg: str) -> None:
    print(f"[parse-latency] {msg}", file=sys.stderr, flush=True)


def load_messages(n: int) -> list[str]:
    texts: list[str] = []
    markup = re.compile(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})")
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - PyYAML is an app dependency
        yaml = None
    for path in sorted((REPO / "nlu").rglob("*.yml")):
        if yaml is None:
            break
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except Exception:
            continue
        for block in doc.get("nlu") or []:
            if isinstance(block, dict) and isinstance(block.get("examples"), str):
                for line in block["examples"].splitlines():
                    line = line.strip()
                    if line.startswith("- "):
                        texts.append(markup.sub(r"\1", line[2:]).strip())
    texts = [t for t in texts if t] + EXTRA_MESSAGES
    # Deterministic interleave so every run sends the same mix.
    texts = texts[::7] + [t for i, t in enumerate(texts) if i % 7]
    return [texts[i % len(texts)] for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mem_kb(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM of pid plus its children (rasa run has no workers, but be safe)."""
    res = {"VmRSS": 0, "VmHWM": 0}
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, val = line.partition(":")
                if key in res:
                    res[key] += int(val.split()[0])
        except OSError:
            pass
    return res


def post_parse(url: str, text: str, timeout: float) -> tuple[float, dict]:
    body = json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(
        url + "/model/parse", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = json.loads(resp.read())
    return time.perf_counter() - t0, data


def run_phase(url: str, msgs: list[str], concurrency: int, timeout: float) -> dict:
    lat: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    if concurrency <= 1:
        for m in msgs:
            try:
                lat.append(post_parse(url, m, timeout)[0])
            except (urllib.error.URLError, OSError, ValueError):
                errors += 1
    else:
        with cf.ThreadPoolExecutor(max_workers=concurrency) as pool:
            futs = [pool.submit(post_parse, url, m, timeout) for m in msgs]
            for f in futs:
                try:
                    lat.append(f.result()[0])
                except (urllib.error.URLError, OSError, ValueError):
                    errors += 1
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in lat]
    return {
        "concurrency": concurrency,
        "requests": len(msgs),
        "errors": errors,
        "p50_ms": pct(ms, 0.5),
        "p95_ms": pct(ms, 0.95),
        "p99_ms": pct(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "throughput_rps": len(lat) / wall if wall > 0 else 0.0,
    }


def start_server(model: str, port: int, startup_timeout: float) -> tuple[subprocess.Popen, float, Path]:
    venv = rasa_venv()
    env = rasa_env()
    logdir = REPO / "reports"
    logdir.mkdir(exist_ok=True)
    logfile = logdir / "parse-latency-server.log"
    cmd = [str(venv / "bin" / "rasa"), "run", "--enable-api", "-m", model, "-i", "127.0.0.1", "-p", str(port)]
    log("starting: " + " ".join(cmd))
    t0 = time.monotonic()
    with logfile.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - t0 < startup_timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"rasa run exited with {proc.returncode}; see {logfile}")
        try:
            with urllib.request.urlopen(url + "/status", timeout=2) as r:
                if r.status == 200 and json.loads(r.read()).get("model_file"):
                    return proc, time.monotonic() - t0, logfile
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"rasa run not ready after {startup_timeout:.0f}s; see {logfile}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--pid", type=int, help="server pid for memory figures (with --url)")
    ap.add_argument("--model", help="model .tar.gz (default: scripts/rasa-train.sh output)")
    ap.add_argument("-n", "--requests", type=int, default=500)
    ap.add_argument("--concurrency", default="1,4,8", help="comma-separated client counts")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    ap.add_argument("--startup-timeout", type=float, default=300.0)
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    args = ap.parse_args()

    msgs = load_messages(args.requests)
    proc = None
    result: dict = {"requests_per_phase": args.requests}
    try:
        if args.url:
            url, pid = args.url.rstrip("/"), args.pid
        else:
            model = args.model or script_last_line("rasa-train.sh")
            port = free_port()
            proc, startup, logfile = start_server(model, port, args.startup_timeout)
            url, pid = f"http://127.0.0.1:{port}", proc.pid
            result.update(model=model, startup_seconds=round(startup, 1), server_log=str(logfile))
            log(f"server up in {startup:.1f}s (pid {pid})")
        if pid:
            result["rss_after_start_kb"] = mem_kb(pid)["VmRSS"]

        _, sample = post_parse(url, "電梯壞了三天了", args.timeout)
        result["sample"] = {
            "text": sample.get("text"),
            "text_original": sample.get("text_original"),
            "intent": sample.get("intent"),
            "entities": [(e.get("entity"), e.get("value")) for e in sample.get("entities", [])],
        }
        log(f"sample parse: {json.dumps(result['sample'], ensure_ascii=False)}")
        for m in msgs[: args.warmup]:
            post_parse(url, m, args.timeout)

        phases = []
        for c in [int(x) for x in args.concurrency.split(",") if x.strip()]:
            log(f"{args.requests} requests, concurrency {c} ...")
            ph = run_phase(url, msgs, c, args.timeout)
            phases.append(ph)
            log(
                f"  c={c}: p50 {ph['p50_ms']:.1f} ms, p95 {ph['p95_ms']:.1f} ms, p99 {ph['p99_ms']:.1f} ms, "
                f"{ph['throughput_rps']:.1f} req/s, errors {ph['errors']}"
            )
        result["phases"] = phases
        if pid:
            m = mem_kb(pid)
            result["rss_kb"], result["hwm_kb"] = m["VmRSS"], m["VmHWM"]
    finally:
        if proc is not None:
            stop_server(proc)

    print("| concurrency | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ph in result["phases"]:
        print(
            f"| {ph['concurrency']} | {ph['requests']} | {ph['errors']} | {ph['p50_ms']:.1f} | "
            f"{ph['p95_ms']:.1f} | {ph['p99_ms']:.1f} | {ph['max_ms']:.1f} | {ph['throughput_rps']:.1f} |"
        )
    if "rss_kb" in result:
        print(
            f"\nserver memory: VmRSS {result['rss_kb'] / 1024:.0f} MiB after the run "
            f"({result.get('rss_after_start_kb', 0) / 1024:.0f} MiB after start), "
            f"peak VmHWM {result['hwm_kb'] / 1024:.0f} MiB"
        )
    if "startup_seconds" in result:
        print(f"server startup (process start -> /status has a model): {result['startup_seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 1 if any(ph["errors"] for ph in result["phases"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
