"""Checks baton's OpenLineage events against the official OpenLineage Python client.

Each JSON line of the file given is rebuilt with the client's own classes (generated from the
OpenLineage spec, 2-0-2 events and the facet versions the client ships): their validators check
UUID run ids, times and URIs, and the client then serialises the event itself. The result must
equal baton's event exactly, so field names, nesting, enum values and every `_schemaURL` are the
spec's (empty optional objects aside: `facets: {}` counts as no facets).
Exits 1 with the differences otherwise.

Usage: python3 check_events.py events.jsonl
"""

import json
import sys

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    set_producer,
)
from openlineage.client.generated import nominal_time_run, parent_run
from openlineage.client.serde import Serde


def run_facets(facets):
    out = {}
    for name, f in (facets or {}).items():
        if name == "parent":
            out[name] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=f["run"]["runId"]),
                job=parent_run.Job(namespace=f["job"]["namespace"], name=f["job"]["name"]),
            )
        elif name == "nominalTime":
            out[name] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=f["nominalStartTime"],
                nominalEndTime=f.get("nominalEndTime"),
            )
        else:
            raise ValueError(f"facet `{name}` is not one this check knows")
    return out


def rebuild(e):
    set_producer(e["producer"])
    return RunEvent(
        eventType=RunState[e["eventType"]],
        eventTime=e["eventTime"],
        producer=e["producer"],
        run=Run(runId=e["run"]["runId"], facets=run_facets(e["run"].get("facets"))),
        job=Job(namespace=e["job"]["namespace"], name=e["job"]["name"]),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in e.get("inputs", [])],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in e.get("outputs", [])],
    )


def without_empty(v):
    """Drops empty optional objects (`facets: {}`), which the client writes and baton omits."""
    if isinstance(v, dict):
        return {k: without_empty(x) for k, x in v.items() if x != {}}
    if isinstance(v, list):
        return [without_empty(x) for x in v]
    return v


def main(path):
    failures = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            ours = without_empty(json.loads(line))
            try:
                theirs = without_empty(json.loads(Serde.to_json(rebuild(ours))))
            except Exception as e:  # the client's validators refused it
                print(f"{path}:{n}: refused by the OpenLineage client: {e!r}")
                failures += 1
                continue
            if theirs != ours:
                print(f"{path}:{n}: differs from the OpenLineage client's serialisation")
                print(f"  baton:  {json.dumps(ours, sort_keys=True)}")
                print(f"  client: {json.dumps(theirs, sort_keys=True)}")
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
