"""Grade a whole exercise notebook in a separate process, with time limits, never touching the file.

:func:`grade_notebook` reads the notebook (read-only), finds its check cells (``check("N.k", name)``),
and hands a plan to a child Python process (:mod:`vae_from_scratch.grading._child`) that runs the code
cells in order in one namespace -- check calls removed -- and grades each exercise at the position of
its check cell. The child logs every step to a JSON-lines file; this parent watches it:

* a cell or an exercise that runs past its time limit is interrupted in the child (a SIGALRM), and if
  the child does not come back the parent kills it (process group) and starts a fresh one that skips
  what hung and grades the remaining exercises;
* the same restart happens when the child dies (``os._exit``, a segfault, the memory limit);
* an overall wall-clock limit bounds the whole run.

An exercise scores zero when a cell of its section (the code cells after the previous exercise's check
cell, up to its own) raised, did not parse, timed out or printed more than the output limit; the
report says which cell and why. Exercises listed in the notebook's metadata (written by the
generator) whose check cell was deleted are graded anyway, by the function name of the exercise.
"""

import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .check import exercise_sort_key, get_exercise, load_sets, new_seed

CELL_TIMEOUT = 60.0  # seconds per code cell
EXERCISE_TIMEOUT = 60.0  # seconds for one exercise's graded tests
TOTAL_TIMEOUT = 900.0  # seconds for the whole notebook, restarts included
MAX_OUTPUT = 1_000_000  # characters one cell (or one exercise's tests) may print
STARTUP_TIMEOUT = 120.0  # seconds for the child to import the package
GRACE = 5.0  # the parent kills a child this long after a limit the child should have enforced
METADATA_KEY = "vae_from_scratch"


class NotebookError(Exception):
    """The file is missing or is not a readable Jupyter notebook (nbformat 4)."""


def read_notebook(path):
    """Parse a notebook file (JSON, nbformat 4) without modifying it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NotebookError(f"{path}: cannot read it ({error})") from None
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(f"{path}: not a Jupyter notebook (invalid JSON: {error})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise NotebookError(f"{path}: not a Jupyter notebook (no list of cells)")
    if notebook.get("nbformat") != 4:
        raise NotebookError(f"{path}: nbformat {notebook.get('nbformat')!r} is not supported (need 4)")
    return notebook


def cell_source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def strip_magics(source):
    """Blank IPython line magics and shell escapes (``%matplotlib``, ``!pip``); ``%%`` cells -> None."""
    if source.lstrip().startswith("%%"):
        return None
    lines = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass  # IPython: " + stripped[:40]
        lines.append(line)
    return "\n".join(lines)


def _check_call(node):
    """``(exercise id, argument node)`` when ``node`` is a top-level ``check("N.k", answer)``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
    if name != "check" or not call.args:
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    answer = call.args[1] if len(call.args) > 1 else next(
        (k.value for k in call.keywords if k.arg == "answer"), None)
    if answer is None:
        return None
    return first.value.strip(), answer


def split_checks(source):
    """Return ``(source without its check calls, [(exercise id, answer expression), ...])``.

    Check calls are replaced by ``None`` in place (line numbers kept). A cell that does not parse is
    returned unchanged with no checks (running it reports the syntax error).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source, []
    found = []
    spans = []
    for node in tree.body:
        hit = _check_call(node)
        if hit:
            exercise_id, answer = hit
            found.append((exercise_id, ast.get_source_segment(source, answer) or ""))
            spans.append(node)
    if not spans:
        return source, []
    data = source.encode("utf-8")
    starts = [0]
    for line in data.split(b"\n"):
        starts.append(starts[-1] + len(line) + 1)
    for node in sorted(spans, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        data = data[:begin] + b"None" + b"\n" * (node.end_lineno - node.lineno) + data[end:]
    return data.decode("utf-8"), found


def _has_code(source):
    """False for cells holding only comments, blank lines, bare constants or removed check calls."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError):
        return bool(source.strip())  # run it: the child reports the syntax error
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def _first_line(source):
    for line in source.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            line = line.strip()
            return line if len(line) <= 50 else line[:47] + "..."
    return ""


def build_plan(notebook):
    """Steps in notebook order, cell descriptions, and notes about the notebook's check cells."""
    load_sets()
    from .core import REGISTRY

    steps, cells, notes = [], {}, []
    section, planned = [], []
    number = 0
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        original = cell_source(cell)
        cells[index] = {"index": index, "number": number, "first_line": _first_line(original)}
        source = strip_magics(original)
        if source is None:
            notes.append(f"code cell {number} is a %% cell magic: not run by the grader")
            continue
        source, checks = split_checks(source)
        if _has_code(source):
            steps.append({"kind": "cell", "cell": index, "number": number, "source": source})
            section.append(index)
        for exercise_id, expr in checks:
            if exercise_id not in REGISTRY:
                notes.append(f"code cell {number}: check({exercise_id!r}, ...) names no known exercise")
                continue
            if exercise_id in planned:
                notes.append(f"code cell {number}: a second check cell for {exercise_id} (ignored)")
                continue
            planned.append(exercise_id)
            steps.append({"kind": "exercise", "id": exercise_id, "expr": expr or
                          REGISTRY[exercise_id].function, "section": section})
            section = []
    expected = notebook.get("metadata", {}).get(METADATA_KEY, {}).get("exercises", [])
    for exercise_id in expected if isinstance(expected, list) else []:
        if exercise_id in REGISTRY and exercise_id not in planned:
            function = REGISTRY[exercise_id].function
            notes.append(f"exercise {exercise_id} has no check cell: graded using the name {function}")
            planned.append(exercise_id)
            steps.append({"kind": "exercise", "id": exercise_id, "expr": function, "section": []})
    return steps, cells, notes, planned


class _StderrTail(threading.Thread):
    """Drain the child's stderr, keeping only its last few kilobytes."""

    def __init__(self, stream, keep=8000):
        super().__init__(daemon=True)
        self.stream, self.keep, self.data = stream, keep, b""

    def run(self):
        for chunk in iter(lambda: self.stream.read(4096), b""):
            self.data = (self.data + chunk)[-self.keep:]

    def text(self):
        return self.data.decode("utf-8", "replace")


def _kill(process):
    if process.poll() is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover -- Windows
            process.kill()
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _exit_description(code):
    if code is None:
        return "was killed"
    if code < 0:
        try:
            return f"died of signal {signal.Signals(-code).name}"
        except ValueError:
            return f"died of signal {-code}"
    return f"exited with status {code}"


def _child_environment():
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding vae_from_scratch/
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["VAE_FROM_SCRATCH_GRADING"] = "1"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


def _run_child(plan, workdir, deadline_total, limits, on_event):
    """Run one child until it finishes, dies or is killed. Returns ``(outcome, where, detail)``.

    ``outcome`` is ``"done"``, ``"timeout"`` (killed at a step's limit), ``"total"`` (the overall limit),
    ``"died"`` or ``"startup"`` (died or hung before it was ready); ``where`` is the step running then.
    """
    plan_path = Path(workdir) / "plan.json"
    events_path = Path(workdir) / f"events-{time.monotonic_ns()}.jsonl"
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    events_path.write_text("", encoding="utf-8")
    command = [sys.executable, "-X", "faulthandler", "-m", "vae_from_scratch.grading._child",
               str(plan_path), str(events_path)]
    process = subprocess.Popen(command, cwd=workdir, env=_child_environment(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=hasattr(os, "killpg"))
    tail = _StderrTail(process.stderr)
    tail.start()
    where, deadline = ("startup", None), time.monotonic() + STARTUP_TIMEOUT
    step_start = time.monotonic()
    buffer, position, outcome = "", 0, None
    try:
        while outcome is None:
            exited = process.poll() is not None
            with open(events_path, encoding="utf-8") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event["event"]
                now = time.monotonic()
                if kind == "ready":
                    where, deadline = None, None
                elif kind == "cell_start":
                    where, deadline = ("cell", event["cell"]), now + limits["cell_timeout"] + GRACE
                    step_start = now
                elif kind == "exercise_start":
                    where, deadline = ("exercise", event["id"]), now + limits["exercise_timeout"] + GRACE
                    step_start = now
                elif kind in ("cell_end", "exercise_end", "exercise_skipped"):
                    event["seconds"] = now - step_start
                    where, deadline = None, None
                elif kind == "done":
                    outcome = "done"
                on_event(event)
            if outcome:
                break
            now = time.monotonic()
            if exited:
                outcome = "startup" if where == ("startup", None) else "died"
            elif now > deadline_total:
                outcome = "total"
            elif deadline is not None and now > deadline:
                outcome = "startup" if where == ("startup", None) else "timeout"
            else:
                time.sleep(0.02)
    finally:
        if outcome == "done":
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _kill(process)
        tail.join(timeout=5)
        process.stderr.close()
    detail = _exit_description(process.returncode)
    if outcome in ("died", "startup"):
        lines = [line.strip() for line in tail.text().splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        last = fatal or [line for line in lines if not line.startswith(("Extension modules", "File ",
                                                                          "Current thread", "Thread "))]
        if last:
            detail += f" ({last[-1][:200]})"
    return outcome, where, detail


def grade_notebook(path, seed=None, cell_timeout=CELL_TIMEOUT, exercise_timeout=EXERCISE_TIMEOUT,
                   total_timeout=TOTAL_TIMEOUT, max_output=MAX_OUTPUT, memory_mb=None):
    """Grade the notebook at ``path``; return the report (a JSON-serializable dict).

    Raises :class:`NotebookError` when the file cannot be read as a notebook. The file is only read.
    """
    started = time.monotonic()
    path = Path(path)
    notebook = read_notebook(path)
    seed = new_seed() if seed is None else int(seed)
    steps, cells, notes, planned = build_plan(notebook)
    limits = {"cell_timeout": float(cell_timeout), "exercise_timeout": float(exercise_timeout),
              "total_timeout": float(total_timeout), "max_output": int(max_output),
              "memory_mb": memory_mb}
    cell_status = {}  # index -> (status, message)
    results = {}  # exercise id -> result dict (graded in the child)
    failures = {}  # exercise id -> (status, message): not graded by the tests
    timings = {}
    skip_cells = set()
    deadline_total = started + float(total_timeout)
    restarts = 0
    grader_error = None

    def on_event(event):
        kind = event["event"]
        if kind == "cell_end":
            cell_status.setdefault(event["cell"], (event["status"], event["message"]))
        elif kind == "exercise_end":
            timings[event["id"]] = event.get("seconds", 0.0)
            if "result" in event:
                results[event["id"]] = event["result"]
            else:
                failures[event["id"]] = (event["status"], event["message"])
        elif kind == "exercise_skipped":
            failures[event["id"]] = ("cell", _cells_message(event["cells"], cells, cell_status))

    with tempfile.TemporaryDirectory(prefix="vae-grade-") as workdir:
        while True:
            remaining = [s for s in steps if s["kind"] == "exercise"
                         and s["id"] not in results and s["id"] not in failures]
            if not remaining:
                break
            plan = {"steps": steps, "seed": seed, "notebook_dir": str(path.resolve().parent),
                    "skip_cells": sorted(skip_cells), "skip_exercises": sorted(set(results) | set(failures)),
                    "failed_cells": sorted(i for i, (status, _) in cell_status.items() if status != "ok"),
                    **limits}
            outcome, where, detail = _run_child(plan, workdir, deadline_total, limits, on_event)
            if outcome == "done":
                continue  # every exercise step has run; the loop ends above
            if outcome == "total":
                message = f"not graded: the notebook ran past the overall time limit ({total_timeout:g} s)"
                if where and where[0] == "cell":
                    cell_status.setdefault(where[1], ("timeout", message))
                for step in remaining:
                    failures.setdefault(step["id"], ("total", message))
                break
            if outcome == "startup":
                grader_error = f"the grading process could not start: it {detail}"
                for step in remaining:
                    failures.setdefault(step["id"], ("grader", grader_error))
                break
            restarts += 1
            if where is None or restarts > len(steps) + 1:
                message = f"not graded: the grading process {detail}"
                for step in remaining:
                    failures.setdefault(step["id"], ("crashed", message))
                break
            kind, key = where
            if kind == "cell":
                skip_cells.add(key)
                if outcome == "timeout":
                    status = ("timeout", f"did not finish within {cell_timeout:g} s (an infinite loop?); "
                                         "the grader stopped it")
                else:
                    status = ("crashed", f"the Python process {detail}")
                cell_status.setdefault(key, status)
            else:
                if outcome == "timeout":
                    failures[key] = ("timeout", f"the tests did not finish within {exercise_timeout:g} s "
                                                "(an infinite loop?); the grader stopped them")
                else:
                    failures[key] = ("crashed", f"the Python process {detail} while this exercise was tested")

    report = _report(path, seed, steps, cells, cell_status, results, failures, timings, notes, limits)
    report["restarts"] = restarts
    report["seconds"] = round(time.monotonic() - started, 3)
    if grader_error:
        report["status"] = "error"
        report["error"] = grader_error
    return report


def _cells_message(indices, cells, cell_status):
    parts = []
    for index in indices:
        info = cells.get(index, {"number": "?", "first_line": ""})
        status, message = cell_status.get(index, ("error", "failed"))
        label = {"syntax": "syntax error", "timeout": "time limit", "output": "too much output",
                 "crashed": "crashed"}.get(status, "error")
        first = f' ("{info["first_line"]}")' if info["first_line"] else ""
        parts.append(f"code cell {info['number']}{first}: {label}: {message}")
    return "; ".join(parts)


def _report(path, seed, steps, cells, cell_status, results, failures, timings, notes, limits):
    exercises = []
    for step in steps:
        if step["kind"] != "exercise":
            continue
        exercise = get_exercise(step["id"])
        if step["id"] in results:
            entry = dict(results[step["id"]])
            names = [t["name"] for t in entry.get("tests", [])]
            if (names != [t.name for t in exercise.tests]
                    or entry.get("max_score") != float(exercise.points)
                    or any(t["points"] > t["max_points"] for t in entry["tests"])):
                entry.update(status="error", score=0.0, max_score=float(exercise.points),
                             message="the notebook interfered with the grader's tests")
                for test in entry["tests"]:
                    test.update(points=0.0, passed=False)
        else:
            status, message = failures.get(step["id"], ("crashed", "not graded"))
            entry = {"id": exercise.id, "title": exercise.title, "function": exercise.function,
                     "seed": seed, "status": status, "message": message, "score": 0.0,
                     "max_score": float(exercise.points),
                     "tests": [{"name": t.name, "points": 0.0, "max_points": t.points, "status": "skipped",
                                "message": "not run", "hint": t.hint, "passed": False}
                               for t in exercise.tests]}
        entry["answer"] = step["expr"]
        entry["seconds"] = round(timings.get(step["id"], entry.get("seconds", 0.0)), 3)
        exercises.append(entry)
    problem_cells = []
    for index, (status, message) in sorted(cell_status.items()):
        if status != "ok":
            problem_cells.append({**cells[index], "status": status, "message": message})
    return {
        "notebook": str(path),
        "status": "graded",
        "seed": seed,
        "score": float(sum(e["score"] for e in exercises)),
        "max_score": float(sum(e["max_score"] for e in exercises)),
        "exercises": exercises,
        "problem_cells": problem_cells,
        "notes": notes,
        "limits": limits,
    }


def _points(value):
    return f"{value:g}"


def format_report(report, details=True):
    """The score table printed by ``vae-grade``."""
    lines = [f"{report['notebook']}  (seed {report['seed']})"]
    if report.get("error"):
        lines.append(f"  ERROR: {report['error']}")
    rows = [(e["id"], _shorten(e["title"], 48), f"{_points(e['score'])}/{_points(e['max_score'])}",
             _summary(e)) for e in report["exercises"]]
    header = ("exercise", "title", "score", "result")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header[:3], widths)) + "  " + header[3])
    for row, entry in zip(rows, report["exercises"]):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
        if details and entry["status"] == "graded" and not all(t["status"] == "todo" for t in entry["tests"]):
            for test in entry["tests"]:
                if not test["passed"]:
                    why = f": {test['message']}" if test["message"] else ""
                    lines.append(" " * (4 + widths[0]) + f"FAIL {test['name']}{why}")
    total = f"{_points(report['score'])}/{_points(report['max_score'])}"
    lines.append("  " + "total".ljust(widths[0]) + "  " + "".ljust(widths[1]) + "  " + total)
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _shorten(text, width):
    return text if len(text) <= width else text[: width - 3] + "..."


def _summary(entry):
    status = entry["status"]
    if status == "graded":
        failed = [t for t in entry["tests"] if not t["passed"]]
        if not failed:
            return "all tests pass"
        if all(t["status"] == "todo" for t in entry["tests"]):
            return "not implemented yet (NotImplementedError)"
        return f"{len(failed)} of {len(entry['tests'])} tests failed"
    labels = {"rejected": "REJECTED", "missing": "MISSING", "timeout": "TIME LIMIT", "output": "TOO MUCH OUTPUT",
              "cell": "CELL FAILED", "crashed": "CRASHED", "total": "NOT GRADED", "error": "ERROR",
              "grader": "NOT GRADED"}
    return f"{labels.get(status, status.upper())}: {entry['message']}"


def grade_folder(folder, **options):
    """Grade every ``*.ipynb`` under ``folder`` (recursively, checkpoints skipped); one report each."""
    folder = Path(folder)
    paths = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    reports = []
    for path in paths:
        try:
            report = grade_notebook(path, **options)
        except NotebookError as error:
            report = {"notebook": str(path), "status": "error", "error": str(error), "seed": None,
                      "score": 0.0, "max_score": 0.0, "exercises": [], "problem_cells": [], "notes": []}
        report["submission"] = str(path.relative_to(folder))
        reports.append(report)
    return reports


def write_csv(reports, path):
    """One row per submission: a column per exercise, the total, the maximum, and any error."""
    import csv

    ids = sorted({e["id"] for r in reports for e in r["exercises"]}, key=exercise_sort_key)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", *ids, "score", "max_score", "status", "seed", "error"])
        for report in reports:
            scores = {e["id"]: _points(e["score"]) for e in report["exercises"]}
            writer.writerow([report.get("submission", report["notebook"]), *(scores.get(i, "") for i in ids),
                             _points(report["score"]), _points(report["max_score"]), report["status"],
                             report["seed"] if report["seed"] is not None else "", report.get("error", "")])
