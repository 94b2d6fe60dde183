#!/usr/bin/env python3
"""JSON plugin: reports a metric and, when a marker file exists, a fault."""
import json
import os
import time

faults = []
if os.path.exists("/tmp/cimaa-example-broken"):
    faults.append({"name": "backend", "severity": "critical",
                   "message": "backend marked broken by /tmp/cimaa-example-broken"})
print(json.dumps({
    "faults": faults,
    "metrics": [{"name": "sessions", "value": int(time.time()) % 100, "units": ""}],
}))
