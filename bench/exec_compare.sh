#!/bin/bash
# Same-run comparison, N=5000 check_dummy: cimaa with `exec` (plain command)
# vs without (a quoted argument keeps the shell path), and the spawn ceiling
# of both command lines with 256 in flight.
B=${B:-$HOME/.cache/cimaa-target/release/cimaa}
SB=/tmp/cimaa-bench/build/spawnbench
cd /tmp/execbench
for r in 1 2 3; do
  for v in exec shell; do
    rm -f $v/c.db*
    out=$( { /usr/bin/time -f "cpu=%U+%S rss=%MKB" $B -c $v/agent.yaml agent --once; } 2>&1 )
    took=$(echo "$out" | grep -o 'took_secs=[0-9.]*' | cut -d= -f2)
    cpu=$(echo "$out" | grep -o 'cpu=[0-9.+]*')
    echo "rep=$r variant=$v took=$took rate=$(python3 -c "print(round(5000/$took))") $cpu load=$(cut -d' ' -f1 /proc/loadavg)"
  done
  echo "rep=$r ceiling sh-c-exec $($SB -k 256 -d 3 -- /bin/sh -c 'exec /usr/lib/nagios/plugins/check_dummy 0 OK' | grep -o 'rate=[0-9.]*')"
  echo "rep=$r ceiling sh-c      $($SB -k 256 -d 3 -- /bin/sh -c "/usr/lib/nagios/plugins/check_dummy 0 'OK'" | grep -o 'rate=[0-9.]*')"
done
