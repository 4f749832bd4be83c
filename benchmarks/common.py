"""What the benchmark scripts share: the percentile they report, CPU read from /proc, the residents'
sample requests, how Rasa is run, and the PostgreSQL scratch-database helpers.

The scripts are run as files (``python benchmarks/x.py``), which puts this folder first on ``sys.path``:
they import this module as ``common``. From the repository root it is ``benchmarks.common`` (a namespace
package), which is how the tests import it.

Standard library only: parse_latency.py and nlu_pipelines.py run with any Python 3, without the app's
dependencies (asyncpg is imported where it is used).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("MINHU_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

# Residents' requests as ticket texts, one for each of the catalogue's eight categories (the scripts do not pair
# a text with its category): create_dispatch.py sends them round-robin, queue_query.py writes them into the
# tickets it generates.
TEXTS = (
    "楼道灯坏了一个多星期,晚上老人上下楼很不方便,麻烦尽快来修。",
    "家里老人独居,腿脚不便,想预约每周两次上门助餐和陪同就医。",
    "楼上邻居每天深夜装修噪音很大,沟通过几次没有效果,请社区帮忙调解。",
    "需要开具居住证明办理孩子入学手续,请问需要带哪些材料?",
    "小区垃圾站三天没有清运,气味很大,夏天容易招蚊虫。",
    "物业费上涨没有公示,业主意见很大,希望社区出面协调。",
    "房东不退押金,想咨询一下法律上怎么维权,对方一直不接电话。",
    "家里突发困难,想了解临时救助和低保的申请条件和办理流程。",
)


# ---------------------------------------------------------------------------------------------- figures


def pct(values: Iterable[float], q: float) -> float:
    """The q quantile (0 ≤ q ≤ 1, so 0.95 for p95) by nearest rank, without interpolation: the sorted
    values' element at index round(q × (n − 1)) (Python's round: a tie goes to the even index); nan if
    there are no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a local process in clock ticks (Linux /proc/<pid>/stat), None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a local process has used so far (Linux /proc), None if unknown."""
    ticks = _cpu_ticks(pid)
    return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) the processes have used so far together; one that is gone counts 0."""
    return sum(t for pid in pids if (t := _cpu_ticks(pid)) is not None) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- Rasa


def script_last_line(script: str, *args: str) -> str:
    """The last line scripts/<script> prints (rasa-env.sh: the Rasa venv, rasa-train.sh: the model)."""
    out = subprocess.run(
        [str(REPO / "scripts" / script), *args], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def rasa_venv() -> Path:
    return Path(script_last_line("rasa-env.sh"))


def rasa_env(cache_dir: Path | None = None) -> dict[str, str]:
    """The environment Rasa runs in: telemetry off, the repo importable, quiet libraries."""
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        PYTHONPATH=str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore",
    )
    if cache_dir is not None:  # a fresh Rasa training cache per variant: fair train times, no reuse
        env["RASA_CACHE_DIRECTORY"] = str(cache_dir)
    return env


# ---------------------------------------------------------------------------------------------- PostgreSQL


async def pg_admin(server: str, sql: str) -> None:
    """Runs one statement (CREATE / DROP DATABASE) on the server's maintenance database."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_dsn(server: str, name: str) -> str:
    """The server's URL with the database `name` in place of its own."""
    return f"{server.rsplit('/', 1)[0]}/{name}"


def pg_url(server: str, name: str) -> str:
    """pg_dsn as an SQLAlchemy URL for the app's asyncpg driver."""
    return pg_dsn(server, name).replace("postgresql://", "postgresql+asyncpg://")
