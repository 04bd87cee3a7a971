"""One engine calculation in its own process: limits, fork server, process group, watchdog."""
