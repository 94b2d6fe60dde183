#!/bin/sh
# Nagios-style plugin: the 1-minute load average with perfdata.
read -r one five fifteen _ < /proc/loadavg
echo "OK - load average $one, $five, $fifteen | load1=$one;;;0 load5=$five;;;0 load15=$fifteen;;;0"
exit 0
