"""Where a server's time goes under load: py-spy samples its worker while wrk drives it.

    .venv/bin/python bench/profile.py                         # prebake, iris score.py, c=32, 10 s
    .venv/bin/python bench/profile.py --server floor --workload forest

Prints the frames with the most samples on top of the stack (self) and anywhere in it (inclusive),
and keeps the collapsed stacks under .bench/results/ for a flame graph. Needs py-spy (pip install py-spy)
in the project venv; sampling needs ptrace, which root has.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import models, run, servers  # noqa: E402


def top_frames(collapsed: Path, limit: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own.most_common(limit), inclusive.most_common(limit), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="prebake", choices=sorted(servers.SERVERS))
    parser.add_argument("--workload", default="iris", choices=sorted(models.WORKLOADS))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="only the thread holding the GIL (CPU, not waits)")
    parser.add_argument("--native", action="store_true", help="include C frames (numpy, sklearn, uvloop)")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(run.CLIENT_CPU)})
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    workload = models.WORKLOADS[args.workload]
    models.ensure(workload)
    out_dir = servers.WORK / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="profile-", dir=out_dir))
    server = servers.SERVERS[args.server]
    collapsed = log_dir / f"{args.server}-{args.workload}-c{args.concurrency}.txt"
    body_file = log_dir / "body.json"
    body_file.write_bytes(servers.body(workload, server.protocol))
    with servers.Running(server, workload, log_dir) as running:
        run.wrk(running.port, running.launch.path, body_file, args.concurrency, 2)
        worker = running.worker_pids()[0]
        record = [
            "taskset", "-c", run.CLIENT_CPU, py_spy, "record", "--pid", str(worker), "--rate", "200",
            "--duration", str(args.seconds), "--format", "raw", "--output", str(collapsed), "--nonblocking",
        ]  # fmt: skip
        if args.native:
            record.append("--native")
        if args.gil:
            record.append("--gil")
        load = threading.Thread(
            target=run.wrk,
            args=(running.port, running.launch.path, body_file, args.concurrency, args.seconds + 2),
            daemon=True,
        )
        load.start()
        subprocess.run(record, capture_output=True, timeout=args.seconds + 60, check=True)
        load.join(timeout=args.seconds + 40)
    own, inclusive, total = top_frames(collapsed, args.top)
    print(f"{args.server} {args.workload} c={args.concurrency}: {total} samples of worker {worker}")
    print("\nself (top of stack):")
    for frame, count in own:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("\ninclusive:")
    for frame, count in inclusive:
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
