#!/bin/sh
# Nagios-style plugin: used space of a mount point, in percent.
mount=${1:-/}
used=$(df -P "$mount" | awk 'NR==2 { sub("%", "", $5); print $5 }')
if [ -z "$used" ]; then
    echo "UNKNOWN - cannot read $mount"
    exit 3
fi
echo "OK - $mount is $used% full | used_pct=$used%;;;0;100"
exit 0
