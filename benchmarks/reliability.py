"""Reliability benchmark: a fault soak, the crash points and the bad-input corpus, in one table.

    python benchmarks/reliability.py [--users 10000] [--events 20000] [--p-429 0.05] [--rate-limit 150]

The soak syncs the same sample warehouse to a fault-free emulator and to one answering 10%
500/503 and 5% 429 at random, dropping 2% of connections before the write and 1% after it,
with 0-100 ms latency, and compares what each holds. More 429s come from the emulator's rate
safeguard (`--rate-limit` requests/second, not told to the client). The crash
points and the corpus are their test modules, run with pytest.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from reliability_kit import soak


def pytest_counts(target: str, workdir: Path) -> tuple[int, int]:
    """(cases run, cases that passed or failed as their xfail says) of one test module."""
    report = workdir / (Path(target).stem + ".xml")
    subprocess.run(
        [sys.executable, "-m", "pytest", target, "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    cases = ET.parse(report).getroot().iter("testcase")
    total = handled = 0
    for case in cases:
        total += 1
        outcome = {child.tag for child in case}
        handled += not outcome & {"failure", "error"}  # passed, or xfailed as recorded
    return total, handled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--p-429", type=float, default=0.05, help="share of requests answered 429 at random")
    parser.add_argument("--rate-limit", type=int, default=150, help="the emulator's requests/second safeguard")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--skip-corpus", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("DAGSTER_HOME", str(work / "dagster_home"))
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = soak(work / "soak", args.users, args.events, p_429=args.p_429, rate_limit_per_s=args.rate_limit)
        elapsed = time.monotonic() - started
        rows.append(("soak size", f"{args.users} users, {args.events} events; converged in {result.runs} run(s), {elapsed:.0f} s"))
        for kind in ("500", "503", "drop_before", "lost_response"):
            rows.append((f"faults injected: {kind}", str(result.injected[kind])))
        rows.append(("429s answered (random and rate safeguard)", str(result.injected["429"])))
        rows.append(("requests (faulty emulator)", str(result.requests)))
        for name, (expected, found) in result.expected_vs_found().items():
            rows.append((f"{name}: expected / found equal", f"{expected} / {found}"))
        lost = sum(expected - found for expected, found in result.expected_vs_found().values())
        rows.append(("lost (missing or different)", str(lost)))
        rows.append(("events duplicated / lost responses on POST /events", f"{result.duplicated_events()} / {result.lost_event_posts}"))
        resent = result.lost_event_posts + result.dropped_event_posts
        why = f"lost {result.lost_event_posts} + dropped before {result.dropped_event_posts} on POST /events"
        rows.append(("possible duplicates in metadata / resent events", f"{result.possible_duplicates_reported} / {resent} ({why})"))
        if not args.skip_crash:
            total, handled = pytest_counts("tests/reliability/test_reliability_crash.py", work)
            rows.append(("crash tests passed (8 kill points, the pool-slot recovery)", f"{handled} / {total}"))
        if not args.skip_corpus:
            total, handled = pytest_counts("tests/bad_inputs/test_bad_inputs.py", work)
            rows.append(("bad inputs tried / handled as expected", f"{total} / {handled}"))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0 if lost == 0 and result.duplicated_events() == result.lost_event_posts else 1


if __name__ == "__main__":
    sys.exit(main())
