"""The grading child process: run a notebook's code cells, grade its exercises, log JSON lines.

Started by :mod:`vae_from_scratch.grading.grader` as
``python -m vae_from_scratch.grading._child PLAN.json EVENTS.jsonl``; never run it by hand. The plan
lists steps in notebook order: code cells to execute (check calls already removed) and exercises to
grade at the position of their check cell. Cells share one ``__main__`` namespace, as in Jupyter.

Each step has a time limit (a repeating SIGALRM that raises :class:`~.check.TimeLimit`), printed
output is capped, and every step writes ``start``/``end`` events to the events file and flushes it,
so the parent learns exactly where a child that hangs or dies was, kills it if needed and starts a
new one for the remaining steps.
"""

import builtins
import json
import os
import sys
import time
import traceback
import types


class OutputLimit(BaseException):
    """Raised by :class:`CappedWriter` when a step prints more than allowed."""


class CappedWriter:
    """A text stream that counts characters and raises :class:`OutputLimit` past ``limit``.

    Output is discarded (the grader reports scores, not prints); only a short head is kept.
    """

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, limit):
        self.limit = int(limit)
        self.reset()

    def reset(self):
        self.count = 0
        self.tripped = False
        self.head = []

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        self.count += len(text)
        if self.count > self.limit:
            self.tripped = True
            raise OutputLimit(f"printed more than {_size(self.limit)} (the output limit)")
        if sum(len(h) for h in self.head) < 2000:
            self.head.append(text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        raise OSError("no file descriptor while grading")

    def readable(self):
        return False

    def writable(self):
        return True


def _size(n):
    return f"{n / 1e6:g} MB" if n >= 1e6 else f"{n / 1e3:g} kB" if n >= 1e3 else f"{n} characters"


def _location(error, filename):
    """' (line N)' of the innermost frame of the cell named ``filename``, if any."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f" (line {error.lineno})"
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    return f" (line {line})" if line else ""


def _describe(error, filename):
    text = str(error)
    if isinstance(error, SyntaxError):
        text = error.msg or text
    name = type(error).__name__
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:297] + "..."
    return (f"{name}: {text}" if text else name) + _location(error, filename)


def _protect():
    """Snapshot the grading modules' namespaces and NumPy's comparison helpers.

    Restored before each exercise is graded, so a notebook that (accidentally or not) replaces
    ``assert_close`` or ``numpy.allclose`` cannot make failing tests pass.
    """
    import numpy

    modules = [m for name, m in list(sys.modules.items())
               if m is not None and (name == "vae_from_scratch.grading"
                                     or name.startswith("vae_from_scratch.grading."))]
    snapshot = [(m, dict(vars(m))) for m in modules]
    names = ("allclose", "isclose", "all", "any", "isfinite", "asarray", "array", "abs", "max")
    snapshot.append((numpy, {n: getattr(numpy, n) for n in names}))
    from .core import REGISTRY

    for exercise in REGISTRY.values():  # the exercises themselves: their tests, points and reference
        snapshot.append((exercise, dict(vars(exercise), tests=list(exercise.tests))))
        for test in exercise.tests:
            snapshot.append((test, dict(vars(test))))
    return snapshot


def _restore(snapshot):
    for target, values in snapshot:
        for name, value in values.items():
            if name == "tests":
                if list(getattr(target, name, ())) != value:
                    target.tests = list(value)
            elif getattr(target, name, None) is not value:
                setattr(target, name, value)


def main(plan_path, events_path):
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    events = open(events_path, "a", encoding="utf-8")  # noqa: SIM115 -- open for the whole run

    def emit(**event):
        event["time"] = time.time()
        events.write(json.dumps(event) + "\n")
        events.flush()

    os.environ["VAE_FROM_SCRATCH_GRADING"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    if plan.get("memory_mb"):
        import resource

        limit = int(plan["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if plan.get("notebook_dir"):
        sys.path.insert(0, plan["notebook_dir"])

    from .check import TimeLimit, load_sets, run_exercise, time_limit

    load_sets()
    snapshot = _protect()

    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main_module
    namespace = main_module.__dict__
    namespace["display"] = lambda *objects, **kwargs: print(*objects)

    writer = CappedWriter(plan["max_output"])
    real_streams = (sys.stdout, sys.stderr)
    failed_cells = set(plan.get("failed_cells", ()))
    skip_cells = set(plan.get("skip_cells", ()))
    skip_exercises = set(plan.get("skip_exercises", ()))
    emit(event="ready", pid=os.getpid())

    for step in plan["steps"]:
        writer.reset()
        sys.stdout = sys.stderr = writer
        if step["kind"] == "cell":
            index = step["cell"]
            if index in skip_cells:
                continue
            emit(event="cell_start", cell=index)
            status, message = _run_cell(step, namespace, plan["cell_timeout"], writer, TimeLimit,
                                        time_limit)
            if status != "ok":
                failed_cells.add(index)
            sys.stdout, sys.stderr = real_streams
            emit(event="cell_end", cell=index, status=status, message=message)
            continue

        exercise_id = step["id"]
        if exercise_id in skip_exercises:
            continue
        bad = [c for c in step["section"] if c in failed_cells]
        if bad:
            sys.stdout, sys.stderr = real_streams
            emit(event="exercise_skipped", id=exercise_id, cells=bad)
            continue
        emit(event="exercise_start", id=exercise_id)
        _restore(snapshot)
        status, message, result = "graded", "", None
        try:
            with time_limit(plan["exercise_timeout"]) as limit:
                try:
                    answer = eval(step["expr"], namespace)  # noqa: S307 -- the student's own notebook
                except NameError:
                    answer = None
                    status = "missing"
                    message = (f"{step['expr']} is not defined: run the cell that defines it "
                               "(its name must match the check cell)")
                limit["armed"] = False  # run_exercise sets its own limit
            if status == "graded":
                result = run_exercise(exercise_id, answer, seed=plan["seed"],
                                      timeout=plan["exercise_timeout"])
        except TimeLimit:
            status, message = "timeout", (f"the tests did not finish within {plan['exercise_timeout']:g} s "
                                          "(an infinite loop?)")
        except BaseException as error:  # noqa: BLE001 -- anything the answer throws at us
            status, message = "error", _describe(error, "")
        finally:
            sys.stdout, sys.stderr = real_streams
        if result is not None:
            data = result.to_dict()
            if writer.tripped:
                data["status"] = "output"
                data["message"] = f"printed more than {_size(writer.limit)} while being tested"
                for test in data["tests"]:
                    test["points"] = 0.0
                    test["passed"] = False
                data["score"] = 0.0
            emit(event="exercise_end", id=exercise_id, result=data)
        else:
            emit(event="exercise_end", id=exercise_id, status=status, message=message)

    emit(event="done")
    events.close()


def _run_cell(step, namespace, timeout, writer, TimeLimit, time_limit):
    """Execute one code cell; return ``(status, message)``."""
    filename = f"<cell {step['number']}>"
    try:
        code = compile(step["source"], filename, "exec")
    except (SyntaxError, ValueError) as error:  # ValueError: source with null bytes
        return "syntax", _describe(error, filename)
    status, message = "ok", ""
    try:
        with time_limit(timeout) as limit:
            try:
                exec(code, namespace)  # noqa: S102 -- the point of the exercise
            finally:
                limit["armed"] = False
        if limit["expired"]:
            status = "timeout"
    except TimeLimit:
        status = "timeout"
    except OutputLimit:
        status = "output"
    except BaseException as error:  # noqa: BLE001 -- SystemExit and KeyboardInterrupt too
        if writer.tripped:
            status = "output"
        else:
            status, message = "error", _describe(error, filename)
    if status == "ok" and writer.tripped:
        status = "output"
    if status == "timeout":
        message = f"did not finish within {timeout:g} s (an infinite loop?)"
    elif status == "output":
        message = f"printed more than {_size(writer.limit)} (the output limit)"
    return status, message


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
