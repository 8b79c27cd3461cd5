"""Instant feedback in a notebook: ``check("0.1", log_normal_diag)``.

:func:`check` runs the graded tests of one exercise against the object the reader passes and prints
one line per test (pass/fail, points), with a hint and the reason for each failure -- never the
expected numbers -- then the total and the seed that reproduces the run. :func:`run_exercise` does the
same work silently and returns an :class:`ExerciseResult`; the grader and the test suite use it.

Each test gets its own ``numpy.random.Generator`` derived from ``(seed, exercise id, test index)``, and
the global RNGs (``random``, ``numpy.random``, ``torch``) are seeded the same way for the duration of
the test and restored afterwards, so a failing run is reproduced exactly by passing the printed seed.
"""

import os
import random
import signal
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as onp

from . import guard
from .core import REGISTRY

GRADING_ENV = "VAE_FROM_SCRATCH_GRADING"  # set by the grader: check cells in a notebook do nothing
_MESSAGE_LIMIT = 300


class TimeLimit(BaseException):
    """Raised (by a timer signal) when code runs past its time limit.

    A ``BaseException`` so that a student's ``except Exception:`` does not swallow it.
    """


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest class

    name: str
    points: float  # points earned
    max_points: float
    status: str  # "pass", "fail" (assertion), "error" (other exception), "todo" (NotImplementedError),
    #              "timeout", "skipped" (not run: time limit reached or answer rejected)
    message: str = ""  # why it failed (AssertionError text or exception), never the expected numbers
    hint: str = ""

    @property
    def passed(self):
        return self.status == "pass"


@dataclass
class ExerciseResult:
    id: str
    title: str
    function: str
    seed: int
    status: str  # "graded", "rejected" (uses the reference), "timeout", "missing", "error", "crashed"
    message: str = ""
    tests: list = field(default_factory=list)
    max_score: float = 0.0
    seconds: float = 0.0

    @property
    def score(self):
        return float(sum(t.points for t in self.tests))

    def to_dict(self):
        data = asdict(self)
        data["score"] = self.score
        for test, result in zip(data["tests"], self.tests):
            test["passed"] = result.passed
        return data


def load_sets():
    """Import every exercise set (idempotent) so that :data:`REGISTRY` is complete."""
    from . import sets  # noqa: F401 -- importing registers the exercises

    return sets


def get_exercise(exercise_id):
    """The registered :class:`~vae_from_scratch.grading.core.Exercise` with this id."""
    if hasattr(exercise_id, "tests"):
        return exercise_id
    sets = load_sets()
    exercise_id = str(exercise_id).strip()
    if exercise_id not in REGISTRY:
        known = ", ".join(sorted(REGISTRY, key=exercise_sort_key)) or "none"
        extra = ""
        if getattr(sets, "IMPORT_ERRORS", None):
            extra = f"; some exercise sets failed to import: {', '.join(sets.IMPORT_ERRORS)}"
        raise KeyError(f"no exercise {exercise_id!r} (known: {known}){extra}")
    return REGISTRY[exercise_id]


def exercise_sort_key(exercise_id):
    """Sort "2.10" after "2.9"."""
    parts = []
    for part in str(exercise_id).split("."):
        parts.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return parts


def new_seed():
    """A fresh random seed, small enough to read and type (0 <= seed < 2**32)."""
    return int.from_bytes(os.urandom(4), "little")


def seed_sequence_for(seed, exercise_id, index):
    """The ``SeedSequence`` of test number ``index`` of an exercise for a given run seed."""
    return onp.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(str(exercise_id).encode()), index))


@contextmanager
def seeded_globals(seed_sequence):
    """Seed ``random``, ``numpy.random`` and (if imported) ``torch`` for one test; restore afterwards."""
    words = seed_sequence.generate_state(4)
    py_state = random.getstate()
    np_state = onp.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.get_rng_state() if torch is not None and hasattr(torch, "get_rng_state") else None
    random.seed(int(words[0]))
    onp.random.seed(int(words[1]))
    if torch_state is not None:
        torch.manual_seed(int(words[2]) << 32 | int(words[3]))
    try:
        yield
    finally:
        random.setstate(py_state)
        onp.random.set_state(np_state)
        if torch_state is not None:
            torch.set_rng_state(torch_state)


@contextmanager
def time_limit(seconds):
    """Raise :class:`TimeLimit` in this thread after ``seconds`` (Unix main thread; else no limit).

    The timer repeats every second until the block exits, so an answer that catches the first
    ``TimeLimit`` gets another one. Yields a dict whose ``"expired"`` key tells whether it fired.
    """
    state = {"expired": False, "armed": False}
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield state
        return

    def fire(signum, frame):
        if state["armed"]:
            state["expired"] = True
            raise TimeLimit(f"time limit of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, fire)
    state["armed"] = True
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3), 1.0)
    try:
        yield state
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _clip(text):
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _describe(error):
    message = str(error)
    return _clip(f"{type(error).__name__}: {message}" if message else type(error).__name__)


def run_exercise(exercise, answer, seed=None, timeout=None):
    """Run every graded test of ``exercise`` (an id or an Exercise) against ``answer``.

    Returns an :class:`ExerciseResult`. An answer that is, wraps or calls the package's own solution
    scores zero with status ``"rejected"``. With ``timeout`` (seconds, Unix main thread), tests still
    running when it expires fail and the remaining ones are skipped (status ``"timeout"``).
    """
    exercise = get_exercise(exercise)
    seed = new_seed() if seed is None else int(seed)
    result = ExerciseResult(exercise.id, exercise.title, exercise.function, seed, "graded",
                            max_score=float(exercise.points))
    start = time.perf_counter()

    def skip_all(reason):
        result.tests = [TestOutcome(t.name, 0.0, t.points, "skipped", reason, t.hint)
                        for t in exercise.tests]

    if answer is None:
        result.status = "missing"
        result.message = f"no answer given (None); define the function {exercise.function!r}"
        skip_all("no answer")
        return result
    found, student_codes = guard.static_check(answer, exercise)
    if found:
        result.status = "rejected"
        result.message = f"your answer uses the package's own solution ({found}); write it yourself"
        skip_all("answer rejected")
        return result

    runtime = guard.RuntimeGuard(exercise, student_codes)
    wrapped = runtime.wrap(answer)
    with time_limit(timeout) as limit:
        for index, test in enumerate(exercise.tests):
            if limit["expired"]:
                result.tests.append(TestOutcome(test.name, 0.0, test.points, "skipped",
                                               "not run: time limit reached", test.hint))
                continue
            sequence = seed_sequence_for(seed, exercise.id, index)
            rng = onp.random.default_rng(sequence)
            try:
                with seeded_globals(sequence), runtime:
                    test.run(wrapped, rng)
            except TimeLimit:
                limit["armed"] = False  # back in grading code: no further alarms
                outcome = TestOutcome(test.name, 0.0, test.points, "timeout",
                                     f"did not finish within the time limit ({timeout:g} s)", test.hint)
            except KeyboardInterrupt:
                raise
            except NotImplementedError as error:
                outcome = TestOutcome(test.name, 0.0, test.points, "todo", _describe(error), test.hint)
            except AssertionError as error:
                outcome = TestOutcome(test.name, 0.0, test.points, "fail",
                                     _clip(error) or "assertion failed", test.hint)
            except BaseException as error:  # noqa: BLE001 -- any exception is a failed test
                outcome = TestOutcome(test.name, 0.0, test.points, "error", _describe(error), test.hint)
            else:
                outcome = TestOutcome(test.name, test.points, test.points, "pass", "", test.hint)
            result.tests.append(outcome)
    result.seconds = time.perf_counter() - start
    if runtime.violation:
        result.status = "rejected"
        result.message = (f"your answer calls the package's own solution ({runtime.violation}); "
                          "write it yourself")
        for test in result.tests:
            test.points = 0.0
            if test.status == "pass":
                test.status, test.message = "skipped", "answer rejected"
    elif limit["expired"]:
        result.status = "timeout"
        result.message = f"the tests did not finish within {timeout:g} s (an infinite loop?)"
    return result


def _points(value):
    return f"{value:g}"


def format_result(result, name=None):
    """The lines :func:`check` prints for an :class:`ExerciseResult`."""
    name = name or result.function
    lines = [f"Exercise {result.id}: {result.title}  (seed {result.seed})"]
    tests = result.tests
    if result.status in ("rejected", "missing"):
        lines.append(f"  REJECTED  {result.message}" if result.status == "rejected"
                     else f"  MISSING  {result.message}")
    elif tests and all(t.status == "todo" for t in tests):
        lines.append(f"  not implemented yet: {name} raises NotImplementedError. "
                     "Replace the `raise NotImplementedError(...)` line with your code.")
    else:
        width = max(len(f"{_points(t.points)}/{_points(t.max_points)}") for t in tests) if tests else 3
        for test in tests:
            verdict = "PASS" if test.passed else "FAIL"
            score = f"{_points(test.points)}/{_points(test.max_points)}".rjust(width)
            lines.append(f"  {verdict}  {score}  {test.name}")
            if not test.passed:
                if test.hint:
                    lines.append(f"        hint: {test.hint}")
                if test.message:
                    lines.append(f"        why:  {test.message}")
        if result.status == "timeout":
            lines.append(f"  TIME LIMIT  {result.message}")
    total = f"Score: {_points(result.score)}/{_points(result.max_score)}"
    if result.score == result.max_score and result.max_score > 0:
        lines.append(f"{total} -- all tests pass.")
    elif result.status in ("rejected", "missing") or all(t.status == "todo" for t in tests):
        lines.append(f"{total}.")
    else:
        lines.append(f'{total}.  Reproduce this run with check("{result.id}", {name}, '
                     f"seed={result.seed}).")
    return "\n".join(lines)


def check(exercise_id, answer, seed=None, timeout=None):
    """Grade ``answer`` on exercise ``exercise_id`` and print one line per test, then the total.

    ``seed`` (an int) reproduces a run; by default every call draws a fresh one and prints it.
    Returns ``None`` so that a check cell shows only the printed report. Inside the grader (which
    grades the whole notebook itself) it does nothing.
    """
    if os.environ.get(GRADING_ENV) == "1":
        return None
    result = run_exercise(exercise_id, answer, seed=seed, timeout=timeout)
    name = getattr(answer, "__name__", None)
    if not (isinstance(name, str) and name.isidentifier()):
        name = result.function
    print(format_result(result, name=name))
    return None
