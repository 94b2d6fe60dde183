#!/bin/sh
# JSON plugin: exits 0 and prints {"faults": [...], "metrics": [...]}. It
# reports one CRITICAL fault while the marker file exists.
marker=/tmp/cimaa-example-broken
faults=""
if [ -e "$marker" ]; then
    faults="{\"name\": \"backend\", \"severity\": \"critical\", \"message\": \"backend marked broken by $marker\"}"
fi
sessions=$(($(date +%s) % 100))
printf '{"faults": [%s], "metrics": [{"name": "sessions", "value": %d, "units": ""}]}\n' "$faults" "$sessions"
