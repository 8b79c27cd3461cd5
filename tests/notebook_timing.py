"""pytest plugin: report how long each notebook took under nbval (reported, never asserted).

Loaded by the README's test command with ``-p tests.notebook_timing``. nbval makes one test item per
code cell; this sums the cells' call durations per notebook and prints a table at the end of the run.
"""

from collections import defaultdict

_seconds = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb") and report.when in ("setup", "call", "teardown"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    terminalreporter.section("notebook execution time (nbval, this machine)")
    for path, seconds in sorted(_seconds.items()):
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
