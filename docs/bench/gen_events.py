#!/usr/bin/env python3
"""Writes N common-data-model events as NDJSON to stdout, for the ingest
benchmark: units first, then per work item one upsert and a few transitions
(about 5 events per item), plus changes and deployments. Deterministic."""
import json
import sys
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout
base = datetime(2025, 1, 1, tzinfo=timezone.utc)
flow = ["In Progress", "In Review", "Testing", "Done"]
written = 0


def emit(event):
    global written
    out.write(json.dumps(event, separators=(",", ":")))
    out.write("\n")
    written += 1


def ts(minutes):
    return (base + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


emit({"id": "b-pf", "type": "unit.upserted", "source": "bench",
      "data": {"key": "bench-pf", "kind": "PORTFOLIO", "name": "Bench"}})
emit({"id": "b-pg", "type": "unit.upserted", "source": "bench",
      "data": {"key": "bench-pg", "kind": "PROGRAM", "name": "Bench program", "parent": "bench-pf"}})
teams = [f"bench-t{i}" for i in range(10)]
for t in teams:
    emit({"id": f"b-{t}", "type": "unit.upserted", "source": "bench",
          "data": {"key": t, "kind": "TEAM", "name": t, "parent": "bench-pg"}})

item = 0
while written < n:
    item += 1
    team = teams[item % len(teams)]
    start = item * 7 % (600 * 24 * 60)
    ext = f"B-{item}"
    emit({"id": f"w-{item}", "type": "work_item.upserted", "source": "bench",
          "data": {"external_id": ext, "key": ext, "unit": team, "type": "STORY",
                   "title": f"Story {item}", "state": "Backlog", "created_at": ts(start)}})
    for step, state in enumerate(flow):
        if written >= n:
            break
        emit({"id": f"t-{item}-{step}", "type": "work_item.transitioned", "source": "bench",
              "data": {"external_id": ext, "to_state": state, "at": ts(start + 60 * (step + 1))}})
    if item % 10 == 0 and written < n:
        emit({"id": f"c-{item}", "type": "change.upserted", "source": "bench",
              "data": {"external_id": f"pr-{item}", "unit": team, "repository": "bench/repo",
                       "merged_at": ts(start + 300), "work_items": [ext]}})
    if item % 50 == 0 and written < n:
        emit({"id": f"d-{item}", "type": "deployment.recorded", "source": "bench",
              "data": {"external_id": f"dep-{item}", "unit": team, "environment": "PRODUCTION",
                       "status": "SUCCESS", "finished_at": ts(start + 400), "changes": [f"pr-{item}"]}})
