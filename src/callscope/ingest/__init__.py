"""The one place that wires the stages together: the `callscope` command line and its
subcommands (`import`, `capture`, `serve`, `purge`, `createmanager`, `demo`, ...), the
capture and encoder worker loops, and the scheduler jobs.
"""
