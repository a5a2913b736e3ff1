#!/usr/bin/env python3
"""Generates realistic pipeline files for the validation benchmark.

usage: gen_pipelines.py DIR FILES TASKS
Each task needs one to three earlier tasks, reads a param and an upstream output in its
templates, and sets retries and a timeout, so validation exercises every check.
"""
import os
import random
import sys


def pipeline(i: int, tasks: int, rng: random.Random) -> str:
    lines = [
        f"name: generated-{i}",
        "namespace: bench",
        "params:",
        '  date: { type: string, default: "2026-01-01" }',
        "  limit: { type: integer, default: 100, min: 1 }",
        "defaults:",
        "  timeout: 10m",
        "  retries: { limit: 2, delay: 1s, backoff: exponential, max_delay: 1m, jitter: full }",
        "schedule:",
        '  - cron: "15 2 * * *"',
        "    timezone: Europe/Berlin",
        "tasks:",
    ]
    for t in range(tasks):
        lines.append(f"  t{t}:")
        if t > 0:
            ups = sorted(rng.sample(range(max(0, t - 10), t), min(t, rng.randint(1, 3))))
            lines.append("    needs: [" + ", ".join(f"t{u}" for u in ups) + "]")
            lines.append(
                f'    run: ./step.sh --date "{{{{ params.date }}}}" --in "{{{{ tasks.t{ups[0]}.outputs.path }}}}"'
            )
            if t % 7 == 0:
                lines.append(f"    if: tasks.t{ups[-1]}.outputs.rows | int > 0")
        else:
            lines.append('    run: ./step.sh --date "{{ params.date }}" --limit {{ params.limit }}')
        lines.append("    outputs: [path, rows]")
        if t % 5 == 0:
            lines.append("    retries: 3")
            lines.append("    timeout: 5m")
    return "\n".join(lines) + "\n"


def main() -> None:
    out, files, tasks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    rng = random.Random(42)
    for i in range(files):
        with open(os.path.join(out, f"p{i:05}.yaml"), "w") as f:
            f.write(pipeline(i, tasks, rng))


if __name__ == "__main__":
    main()
