#!/usr/bin/env python3
"""Compare Rasa NLU pipeline variants on the project's training data.

For every ``benchmarks/pipelines/*.yml`` (or the ones named with ``--variants``) this runs

    rasa test nlu --cross-validation --folds 5 -c <variant> --nlu nlu

in the Rasa venv (``scripts/rasa-env.sh``) and reads Rasa's accumulated test-fold reports, then
(unless ``--no-traditional``) trains each variant once on all of nlu/ and tests it on the
held-out set tests/nlu/test_messages.yml twice: as written, and converted to Traditional Chinese
with OpenCC ``s2t`` (what a resident typing in 繁體 sends). Prints one Markdown table:

    intent accuracy, macro-F1, weighted-F1 (5-fold CV), fallback rate at confidence < 0.6,
    entity micro-F1, held-out accuracy (Simplified / Traditional), CV wall time, train time.

Runs with any Python 3 (the app's 3.11 is fine): Rasa is only called as a subprocess.

    python benchmarks/nlu_pipelines.py                       # all variants, 5 folds
    python benchmarks/nlu_pipelines.py --variants a,b --folds 3
    python benchmarks/nlu_pipelines.py --markdown reports/nlu-pipelines-table.md

The CV folds are seeded (``--fold-seed``, default fixed) so variants are compared on the same splits.

Results (Rasa reports, logs, results.json) go to ``reports/nlu-pipelines/`` (git-ignored).
On the 2-core CI-sized machine a DIET variant takes several minutes for 5 folds; this is a
one-off benchmark, not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/common.py: the script's own folder is first on sys.path
from common import REPO, rasa_env, rasa_venv

PIPELINES = REPO / "benchmarks" / "pipelines"
FALLBACK_THRESHOLD = 0.6
HELDOUT = "tests/nlu/test_messages.yml"


def log(msg: str) -> None:
    print(f"[nlu-pipelines] {msg}", file=sys.stderr, flush=True)


def run_logged(cmd: list[str], logfile: Path, env: dict[str, str], label: str) -> float:
    """Runs ``cmd`` in the repo root, appending output to ``logfile``; short progress to stderr."""
    start = time.monotonic()
    trained = 0
    with logfile.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if "Your Rasa model is trained and saved" in line:
                trained += 1
                log(f"  {label}: model {trained} trained ({time.monotonic() - start:.0f}s)")
        rc = proc.wait()
    elapsed = time.monotonic() - start
    if rc != 0:
        tail = logfile.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{label}: exit {rc}\n" + "\n".join(tail))
    return elapsed


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def fallback_rate(report_dir: Path) -> float | None:
    """Share of test-fold predictions below the FallbackClassifier threshold."""
    preds = []
    for name in ("intent_successes.json", "intent_errors.json"):
        preds += read_json(report_dir / name) if (report_dir / name).exists() else []
    if not preds:
        return None
    low = sum(
        1 for p in preds if (p.get("intent_prediction") or {}).get("confidence", 0.0) < FALLBACK_THRESHOLD
    )
    return low / len(preds)


def entity_micro_f1(report_dir: Path) -> float | None:
    for name in ("DIETClassifier_report.json", "CRFEntityExtractor_report.json"):
        rep = read_json(report_dir / name)
        if rep:
            avg = rep.get("micro avg") or rep.get("weighted avg") or {}
            return avg.get("f1-score")
    return None


def count_examples(venv: Path, env: dict[str, str]) -> dict[str, int]:
    # The importer (as `rasa train` uses it) only reads YAML/JSON training files; the plain
    # loader would also try nlu/README.md and fail.
    code = (
        "import json\n"
        "from rasa.shared.importers.importer import TrainingDataImporter\n"
        "td = TrainingDataImporter.load_from_dict(training_data_paths=['nlu']).get_nlu_data()\n"
        "print(json.dumps({'examples': len(td.intent_examples), 'intents': len(td.intents),"
        " 'entity_examples': len(td.entity_examples)}))\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def to_traditional(venv: Path, env: dict[str, str], src: Path, dst: Path) -> None:
    code = (
        "import sys, opencc\n"
        "c = opencc.OpenCC('s2t')\n"
        "src, dst = sys.argv[1], sys.argv[2]\n"
        "open(dst, 'w', encoding='utf-8').write(c.convert(open(src, encoding='utf-8').read()))\n"
    )
    subprocess.run([str(venv / "bin" / "python"), "-c", code, str(src), str(dst)], check=True, env=env)


def heldout_sets(venv: Path, env: dict[str, str], out: Path) -> tuple[Path, Path] | None:
    """The held-out test set (tests/nlu/test_messages.yml) + a Traditional-Chinese copy of it."""
    test = REPO / HELDOUT
    if not test.exists():
        log(f"{HELDOUT} not found: skipping the held-out / Traditional test")
        return None
    test_trad = out / "test_messages_traditional.yml"
    to_traditional(venv, env, test, test_trad)
    return test, test_trad


# `rasa test nlu --cross-validation` splits with StratifiedKFold(shuffle=True) and no random_state, i.e. from numpy's
# global RNG: every run draws different folds, and that alone moves CV accuracy by ~0.5-1 point on this data. Seeding
# numpy before Rasa starts gives every variant the same folds (for the same data).
SEEDED_RASA = (
    "import random, sys\n"
    "import numpy as np\n"
    "seed = int(sys.argv.pop(1))\n"
    "np.random.seed(seed); random.seed(seed)\n"
    "from rasa.__main__ import main\n"
    "sys.argv[0] = 'rasa'\n"
    "main()\n"
)


def rasa_cmd(venv: Path, fold_seed: int | None) -> list[str]:
    if fold_seed is None:
        return [str(venv / "bin" / "rasa")]
    return [str(venv / "bin" / "python"), "-c", SEEDED_RASA, str(fold_seed)]


def bench_variant(
    venv: Path,
    cfg: Path,
    folds: int,
    out: Path,
    traditional: bool,
    heldout: tuple[Path, Path] | None,
    fold_seed: int | None = None,
) -> dict:
    name = cfg.stem
    vdir = out / name
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir(parents=True)
    logfile = vdir / "log.txt"
    rasa = str(venv / "bin" / "rasa")
    res: dict = {"variant": name, "config": str(cfg.relative_to(REPO))}
    with tempfile.TemporaryDirectory(prefix=f"rasa-cache-{name}-") as cache:
        env = rasa_env(Path(cache))
        cv_dir = vdir / "cv"
        log(f"{name}: {folds}-fold cross-validation")
        res["cv_seconds"] = run_logged(
            [
                *rasa_cmd(venv, fold_seed),
                "test",
                "nlu",
                "--nlu",
                "nlu",
                "--config",
                str(cfg),
                "--cross-validation",
                "--folds",
                str(folds),
                "--out",
                str(cv_dir),
                "--successes",
                "--no-plot",
            ],
            logfile,
            env,
            name,
        )
        rep = read_json(cv_dir / "intent_report.json")
        res["accuracy"] = rep.get("accuracy")
        res["macro_f1"] = (rep.get("macro avg") or {}).get("f1-score")
        res["weighted_f1"] = (rep.get("weighted avg") or {}).get("f1-score")
        res["fallback_rate"] = fallback_rate(cv_dir)
        res["entity_micro_f1"] = entity_micro_f1(cv_dir)
        res["worst_intents"] = sorted(
            (
                (k, v["f1-score"])
                for k, v in rep.items()
                if isinstance(v, dict) and "f1-score" in v and not k.endswith("avg")
            ),
            key=lambda kv: kv[1],
        )[:3]

    if traditional and heldout:
        test, test_trad = heldout
        with tempfile.TemporaryDirectory(prefix=f"rasa-cache-{name}-") as cache:
            env = rasa_env(Path(cache))
            model_dir = vdir / "model"
            log(f"{name}: train on all of nlu/, test on {HELDOUT} (as written + Traditional)")
            res["train_seconds"] = run_logged(
                [
                    rasa,
                    "train",
                    "nlu",
                    "--config",
                    str(cfg),
                    "--nlu",
                    "nlu",
                    "--out",
                    str(model_dir),
                    "--fixed-model-name",
                    name,
                ],
                logfile,
                env,
                name,
            )
            model = model_dir / f"{name}.tar.gz"
            for key, data in (("heldout_acc", test), ("heldout_trad_acc", test_trad)):
                rdir = vdir / key
                run_logged(
                    [
                        rasa,
                        "test",
                        "nlu",
                        "--model",
                        str(model),
                        "--nlu",
                        str(data),
                        "--out",
                        str(rdir),
                        "--no-plot",
                        "--no-errors",
                    ],
                    logfile,
                    env,
                    f"{name}/{key}",
                )
                res[key] = read_json(rdir / "intent_report.json").get("accuracy")
            shutil.rmtree(model_dir, ignore_errors=True)
    log(f"{name}: done " + json.dumps({k: v for k, v in res.items() if k != "worst_intents"}))
    return res


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.0f}"


def table(results: list[dict], folds: int) -> str:
    head = (
        f"| variant | intent acc (CV{folds}) | macro-F1 | weighted-F1 | conf<{FALLBACK_THRESHOLD} | "
        "entity micro-F1 | held-out acc 简 | held-out acc 繁 | CV wall s | train s (all data) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for r in results:
        rows.append(
            f"| {r['variant']} | {fmt(r.get('accuracy'))} | {fmt(r.get('macro_f1'))} | "
            f"{fmt(r.get('weighted_f1'))} | {fmt(r.get('fallback_rate'))} | "
            f"{fmt(r.get('entity_micro_f1'))} | {fmt(r.get('heldout_acc'))} | "
            f"{fmt(r.get('heldout_trad_acc'))} | {fmt(r.get('cv_seconds'), False)} | "
            f"{fmt(r.get('train_seconds'), False)} |"
        )
    return head + "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--variants", default="", help="comma-separated prefixes/stems of benchmarks/pipelines/*.yml"
    )
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "nlu-pipelines")
    ap.add_argument("--no-traditional", action="store_true", help="skip the held-out + Traditional test")
    ap.add_argument(
        "--traditional-variants",
        default="",
        help="only these variants (comma-separated prefixes) get the held-out + Traditional test; default all",
    )
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument(
        "--fold-seed",
        type=int,
        default=20261123,
        help="seed numpy before Rasa so every variant gets the same CV folds; -1 = Rasa's unseeded folds",
    )
    args = ap.parse_args()

    configs = sorted(PIPELINES.glob("*.yml"))
    if args.variants:
        wanted = [w.strip() for w in args.variants.split(",") if w.strip()]
        configs = [c for w in wanted for c in configs if c.stem == w or c.stem.startswith(w + "-")]
    if not configs:
        log("no pipeline variants selected")
        return 2

    venv = rasa_venv()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasa-cache-data-") as cache:
        env = rasa_env(Path(cache))
        stats = count_examples(venv, env)
        log(f"training data: {stats}")
        heldout = None if args.no_traditional else heldout_sets(venv, env, args.out)

    trad = [w.strip() for w in args.traditional_variants.split(",") if w.strip()]
    results = []
    for cfg in configs:
        do_trad = not args.no_traditional and (
            not trad or any(cfg.stem == w or cfg.stem.startswith(w + "-") for w in trad)
        )
        seed = None if args.fold_seed < 0 else args.fold_seed
        results.append(bench_variant(venv, cfg, args.folds, args.out, do_trad, heldout, seed))
        (args.out / "results.json").write_text(
            json.dumps(
                {"data": stats, "folds": args.folds, "results": results}, ensure_ascii=False, indent=2
            ),
            encoding="utf-8",
        )

    md = table(results, args.folds)
    meta = (
        f"\nData: {stats['examples']} intent examples, {stats['intents']} intents, "
        f"{stats['entity_examples']} examples with entities; {args.folds}-fold CV; "
        f"machine: {os.cpu_count()} CPUs.\n"
    )
    worst = "\n".join(
        f"- {r['variant']}: weakest intents " + ", ".join(f"{k} {100 * v:.0f}" for k, v in r["worst_intents"])
        for r in results
    )
    print(md + meta + "\n" + worst)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(md + meta + "\n" + worst + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
