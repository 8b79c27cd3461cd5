"""The grading machinery: check() in a notebook, the reference guard, the grader command, the generator.

Grader tests build fixture notebooks in tmp_path from exercise set 0 (the solutions notebook with one
exercise broken in a known way) and run ``python -m vae_from_scratch.grading`` on them with short
time limits. Each run takes a few seconds; the infinite-loop cases take about their time limit.
"""

import contextlib
import copy
import csv
import functools
import importlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import autograd.numpy as anp
import numpy as onp
import pytest

from vae_from_scratch.grading import REGISTRY, check, exercise, run_exercise
from vae_from_scratch.grading.check import TimeLimit, format_result, time_limit
from vae_from_scratch.grading.core import assert_close, assert_unbiased, false_failure_rate
from vae_from_scratch.grading.generate import GenerateError, generate, render, stub_solutions
from vae_from_scratch.grading.grader import split_checks, strip_magics
from vae_from_scratch.numpy import distributions

from .mutants.ch00_distributions import MUTANTS

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "exercises" / "solutions" / "00_distributions.ipynb"
STUDENT = ROOT / "exercises" / "00_distributions.ipynb"


# --- answers to exercise set 0 ------------------------------------------------------------------


def log_normal_diag(x, mean, log_std):
    z = (x - mean) / anp.exp(log_std)
    return anp.sum(-log_std - 0.5 * anp.log(2 * anp.pi) - 0.5 * z**2, axis=-1)


def bernoulli_log_likelihood(x, logits):
    return anp.sum(x * logits - anp.logaddexp(0.0, logits), axis=-1)


def kl_normal_standard(mean, log_std):
    return anp.sum(0.5 * (mean**2 + anp.exp(2 * log_std) - 1.0) - log_std, axis=-1)


def _printed(function, *args, **kwargs):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        function(*args, **kwargs)
    return buffer.getvalue()


# --- check(): output ----------------------------------------------------------------------------


def test_check_prints_one_line_per_test_and_the_total():
    out = _printed(check, "0.1", log_normal_diag, seed=3)
    lines = out.splitlines()
    assert lines[0] == "Exercise 0.1: Diagonal-Gaussian log-density  (seed 3)"
    tests = REGISTRY["0.1"].tests
    assert len(lines) == 1 + len(tests) + 1
    for line, test in zip(lines[1:], tests):
        points = f"{test.points:g}"
        assert line == f"  PASS  {points}/{points}  {test.name}"
    assert lines[-1] == "Score: 7/7 -- all tests pass."


def test_check_failure_shows_hint_reason_and_reproducing_seed():
    naive = MUTANTS["0.2"][0]  # sigmoid then log: fails only at extreme logits
    out = _printed(check, "0.2", naive, seed=11)
    extreme = next(t for t in REGISTRY["0.2"].tests if "extreme" in t.name)
    assert f"  FAIL  0/2  {extreme.name}" in out
    assert f"        hint: {extreme.hint}" in out
    assert "        why:  your result contains inf or NaN where the true value is finite" in out
    assert out.count("PASS") == 4 and out.count("FAIL") == 1
    assert out.rstrip().endswith('Score: 5/7.  Reproduce this run with check("0.2", naive_sigmoid_log, seed=11).')


def test_check_draws_a_fresh_seed_and_prints_it():
    seeds = {re.search(r"\(seed (\d+)\)", _printed(check, "0.3", kl_normal_standard))[1] for _ in range(3)}
    assert len(seeds) == 3  # a collision has probability ~ 3 / 2**32


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:e[-+]?\d+)?")
_ALLOWED = re.compile(r"worst entry [-+]?[\d.e+-]+ x the tolerance|[\d.]+ standard errors|allowed: [\d.]+")


@pytest.mark.parametrize("exercise_id", ["0.1", "0.2", "0.3"])
def test_check_output_never_shows_expected_numbers(exercise_id):
    """The only decimals printed are tolerance ratios and distances in standard errors."""
    for mutant in MUTANTS[exercise_id]:
        out = _printed(check, exercise_id, mutant, seed=5)
        residue = _ALLOWED.sub("", out).replace(exercise_id, "N.k")
        # integers (points, shapes, seeds) and the hints' own constants such as 1e4 are fine
        residue = "\n".join(line for line in residue.splitlines() if not line.lstrip().startswith("hint:"))
        assert not _NUMBER.findall(residue), out


@pytest.fixture
def planted_exercise():
    """A throw-away exercise whose expected value is a distinctive number."""
    ex = exercise("99.1", "planted", function="planted", reference=lambda: 31415.92653)

    @ex.test("returns the planted number", points=1, hint="no numbers here")
    def _(f, rng):
        assert_close(f(), ex.reference(), rtol=1e-12)

    @ex.test("a custom check", points=1, hint="")
    def _(f, rng):
        if not f() > ex.reference() - 1.0:
            raise AssertionError("your number is too small")

    yield ex
    del REGISTRY["99.1"]


def test_check_hides_the_expected_value_of_a_planted_exercise(planted_exercise):
    out = _printed(check, "99.1", lambda: 2.0, seed=1)
    assert "FAIL" in out
    assert "31415" not in out and "3.14159" not in out and "3.142e+04" not in out


def test_check_stub_and_missing_answers():
    def stub(x, mean, log_std):
        raise NotImplementedError("Exercise 0.1: write your solution here")

    out = _printed(check, "0.1", stub, seed=1)
    assert "not implemented yet: stub raises NotImplementedError" in out
    assert out.rstrip().endswith("Score: 0/7.")
    assert run_exercise("0.1", None, seed=1).status == "missing"
    with pytest.raises(KeyError, match="no exercise '42.42'"):
        check("42.42", stub)


def test_check_is_silent_inside_the_grader(monkeypatch):
    monkeypatch.setenv("VAE_FROM_SCRATCH_GRADING", "1")
    assert _printed(check, "0.1", log_normal_diag) == ""


# --- run_exercise(): seeds, rngs, time limit ----------------------------------------------------


def _recording(store):
    def answer(x, mean, log_std):
        store.append(onp.array(x, dtype=float).ravel()[:3].copy())
        return log_normal_diag(x, mean, log_std)

    return answer


def test_same_seed_same_inputs_and_each_test_its_own_rng():
    first, second, third = [], [], []
    a = run_exercise("0.1", _recording(first), seed=123)
    b = run_exercise("0.1", _recording(second), seed=123)
    run_exercise("0.1", _recording(third), seed=124)
    assert a.score == b.score == 7
    assert len(first) == len(second) and all(onp.array_equal(u, v) for u, v in zip(first, second))
    assert not onp.array_equal(first[0], third[0])
    # tests 1 and 2 draw from different generators: their first inputs differ
    assert not onp.array_equal(first[0], first[1])


def test_global_rngs_are_restored_after_a_check():
    onp.random.seed(0)
    expected = onp.random.random()
    onp.random.seed(0)
    run_exercise("0.1", log_normal_diag, seed=1)
    assert onp.random.random() == expected


def test_exercise_time_limit_stops_an_infinite_loop():
    def spin(x, mean, log_std):
        while True:
            pass

    result = run_exercise("0.1", spin, seed=1, timeout=0.5)
    assert result.status == "timeout" and result.score == 0
    assert result.tests[0].status == "timeout"
    assert all(t.status == "skipped" for t in result.tests[1:])
    assert "TIME LIMIT" in format_result(result)


def test_time_limit_survives_an_answer_that_swallows_it():
    caught = []
    with pytest.raises(TimeLimit):
        with time_limit(0.2):
            while True:
                try:
                    while True:
                        pass
                except TimeLimit:
                    caught.append(1)
                    if len(caught) > 1:
                        raise
    assert len(caught) == 2  # the timer fired again after the first one was swallowed


# --- the reference guard ------------------------------------------------------------------------


def _via_module(x, mean, log_std):
    return distributions.log_normal_diag(x, mean, log_std)


def _via_package(x, mean, log_std):
    import vae_from_scratch.numpy.distributions

    return vae_from_scratch.numpy.distributions.log_normal_diag(x, mean, log_std)


def _via_importlib(x, mean, log_std):
    module = importlib.import_module("vae_from_scratch.numpy." + "distributions")
    return getattr(module, "log_normal" + "_diag")(x, mean, log_std)


def _helper(x, mean, log_std):
    return distributions.log_normal_diag(x, mean, log_std)


def _via_helper(x, mean, log_std):
    return _helper(x, mean, log_std) + 0.0


def _torch_twin():
    from vae_from_scratch.torch import distributions as torch_distributions

    return torch_distributions.log_normal_diag


@pytest.mark.parametrize("answer", [
    distributions.log_normal_diag,
    functools.partial(distributions.log_normal_diag),
    _via_module, _via_package, _via_importlib, _via_helper,
    lambda x, m, s: distributions.log_normal_diag(x, m, s),
    onp.vectorize(distributions.log_normal_diag, signature="(d),(d),(d)->()"),
], ids=["identity", "partial", "module-attribute", "package-path", "importlib", "helper", "lambda",
        "vectorize"])
def test_answers_using_the_reference_are_rejected(answer):
    result = run_exercise("0.1", answer, seed=2)
    assert result.status == "rejected" and result.score == 0
    assert "vae_from_scratch.numpy.distributions.log_normal_diag" in result.message
    assert "REJECTED" in format_result(result)


def test_the_torch_twin_of_the_reference_is_rejected():
    result = run_exercise("0.1", _torch_twin(), seed=2)
    assert result.status == "rejected" and "vae_from_scratch.torch.distributions" in result.message


def test_other_package_functions_stay_allowed():
    def built_on_the_package(x, mean, log_std):
        # the standard-normal log-density of the package is a different concept: allowed
        z = (x - mean) * anp.exp(-log_std)
        return distributions.log_standard_normal(z) - anp.sum(log_std, axis=-1)

    result = run_exercise("0.1", built_on_the_package, seed=4)
    assert result.status == "graded" and result.score == result.max_score


# --- statistical helper -------------------------------------------------------------------------


def test_assert_unbiased_and_its_false_failure_rate():
    assert false_failure_rate(5.0) == pytest.approx(5.733e-7, rel=1e-3)
    rng = onp.random.default_rng(0)
    samples = rng.normal(2.0, 3.0, size=20000)
    assert_unbiased(samples, 2.0)
    with pytest.raises(AssertionError, match="standard errors away from the true value") as info:
        assert_unbiased(samples, 2.5)
    assert "2.5" not in str(info.value)
    with pytest.raises(AssertionError, match="shape"):
        assert_unbiased(samples.reshape(-1, 2), onp.zeros(3))


# --- generator ----------------------------------------------------------------------------------


def test_stub_keeps_signature_docstring_and_indentation():
    source = ('def f(x):\n    """Doc."""\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n'
              '    # END SOLUTION\n\nprint("kept")\n')
    stubbed = stub_solutions(source, "0.9")
    assert stubbed == ('def f(x):\n    """Doc."""\n'
                       '    raise NotImplementedError("Exercise 0.9: write your solution here")\n'
                       '\nprint("kept")\n')


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "without"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n", "nested"),
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n# END SOLUTION\n", "indented"),
    ("def f():\n# BEGIN SOLUTION\n    return 1\n# END SOLUTION\n", "does not parse"),
])
def test_stub_rejects_broken_markers(source, problem):
    with pytest.raises(GenerateError, match=problem):
        stub_solutions(source, "0.9")


def _notebook(cells, **metadata):
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _code(source, tags=None, **extra):
    cell = {"cell_type": "code", "id": f"c{abs(hash(source)) % 10**8}", "metadata": {"tags": tags or []},
            "source": source, "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}],
            "execution_count": 3}
    cell.update(extra)
    return cell


def test_render_strips_outputs_drops_solution_only_cells_and_is_deterministic(tmp_path):
    solution = tmp_path / "exercises" / "solutions" / "07_demo.ipynb"
    solution.parent.mkdir(parents=True)
    nb = _notebook([
        {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Demo"},
        _code("import autograd.numpy as np\nfrom vae_from_scratch.grading import check"),
        _code("def g(x):\n    '''Doc.'''\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"),
        _code("print('instructor only')", tags=["solution-only"]),
        _code('check("0.1", g)'),
    ])
    solution.write_text(json.dumps(nb), encoding="utf-8")
    text = render(solution)
    assert text == render(solution)
    student = json.loads(text)
    sources = ["".join(c["source"]) for c in student["cells"]]
    assert "instructor only" not in text and "2 * x" not in text
    assert sources[2] == ("def g(x):\n    '''Doc.'''\n"
                          '    raise NotImplementedError("Exercise 0.1: write your solution here")\n')
    assert all(c["outputs"] == [] and c["execution_count"] is None
               for c in student["cells"] if c["cell_type"] == "code")
    assert student["metadata"]["vae_from_scratch"]["exercises"] == ["0.1"]
    # --check reports the missing student notebook, writing fixes it, and a stale one is reported
    assert any("is missing" in p for p in generate(tmp_path, check=True))
    assert generate(tmp_path, check=False, out=io.StringIO()) == []
    assert generate(tmp_path, check=True) == []
    target = tmp_path / "exercises" / "07_demo.ipynb"
    target.write_text(text.replace("Demo", "Old"), encoding="utf-8")
    assert any("out of date" in p for p in generate(tmp_path, check=True))


def test_split_checks_and_magics():
    source, checks = split_checks('x = 1; check("0.2", f)\ncheck("0.3",\n      g)\ny = 2\n')
    assert checks == [("0.2", "f"), ("0.3", "g")]
    assert source == "x = 1; None\nNone\n\ny = 2\n"
    assert split_checks("def broken(:\n")[1] == []
    assert strip_magics("%matplotlib inline\n  !ls\nx = 1") == (
        "pass  # IPython: %matplotlib inline\n  pass  # IPython: !ls\nx = 1")
    assert strip_magics("%%time\nx = 1") is None


# --- the grader command -------------------------------------------------------------------------


def _base_notebook():
    """The solutions notebook with the student notebook's metadata (its list of exercises)."""
    nb = json.loads(SOLUTIONS.read_text(encoding="utf-8"))
    nb["metadata"] = json.loads(STUDENT.read_text(encoding="utf-8"))["metadata"]
    return nb


def _cell_defining(nb, name):
    return next(c for c in nb["cells"] if c["cell_type"] == "code" and f"def {name}(" in "".join(c["source"]))


def _write(nb, path):
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _with(tmp_path, name, function=None, append=None, replace=None):
    nb = copy.deepcopy(_base_notebook())
    if function:
        cell = _cell_defining(nb, function)
        if replace is not None:
            cell["source"] = replace
        if append is not None:
            cell["source"] = "".join(cell["source"]) + "\n" + append
    return _write(nb, tmp_path / f"{name}.ipynb")


def _grade(path, *args, cwd=None):
    report_path = Path(str(path) + ".report.json")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    process = subprocess.run(
        [sys.executable, "-m", "vae_from_scratch.grading", str(path), "--json", str(report_path), *args],
        cwd=cwd or path.parent, env=env, capture_output=True, text=True, timeout=240)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return process, report


def _by_id(report):
    return {e["id"]: e for e in report["exercises"]}


def _fingerprint(path):
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.timeout(120)
def test_grader_gives_the_solution_full_marks_and_leaves_the_file_alone(tmp_path):
    path = _with(tmp_path, "solution")
    before = _fingerprint(path)
    process, report = _grade(path, "--seed", "17")
    assert process.returncode == 0, process.stderr
    assert _fingerprint(path) == before
    assert report["seed"] == 17 and report["status"] == "graded"
    assert report["score"] == report["max_score"] == 21
    assert [e["id"] for e in report["exercises"]] == ["0.1", "0.2", "0.3"]
    lines = process.stdout.splitlines()
    assert lines[0].endswith("(seed 17)")
    assert re.match(r"  0\.2 +Bernoulli log-likelihood from logits +7/7 +all tests pass$", lines[3])
    assert re.match(r"  total +21/21$", lines[5])
    assert set(tmp_path.iterdir()) == {path, Path(str(path) + ".report.json")}  # nothing else written


@pytest.mark.timeout(120)
def test_grader_survives_an_infinite_loop_in_one_exercise(tmp_path):
    path = _with(tmp_path, "loop", "bernoulli_log_likelihood", append="while True:\n    pass\n")
    before = _fingerprint(path)
    process, report = _grade(path, "--cell-timeout", "2")
    assert process.returncode == 0, process.stderr
    assert _fingerprint(path) == before
    ex = _by_id(report)
    assert ex["0.2"]["score"] == 0 and ex["0.2"]["status"] == "cell"
    assert "did not finish within 2 s" in ex["0.2"]["message"]
    assert ex["0.1"]["score"] == 7 and ex["0.3"]["score"] == 7
    assert "CELL FAILED" in process.stdout


@pytest.mark.timeout(120)
def test_grader_kills_a_loop_the_alarm_cannot_interrupt(tmp_path):
    # a long C-level loop: Python's signal handler runs only after it; the parent kills the child
    path = _with(tmp_path, "cloop", "bernoulli_log_likelihood", append="x = sum(range(10**12))\n")
    process, report = _grade(path, "--cell-timeout", "1")
    ex = _by_id(report)
    assert process.returncode == 0
    assert ex["0.2"]["score"] == 0 and "the grader stopped it" in ex["0.2"]["message"]
    assert ex["0.1"]["score"] == 7 and ex["0.3"]["score"] == 7
    assert report["restarts"] == 1


@pytest.mark.timeout(120)
def test_grader_reports_a_crash_and_a_syntax_error(tmp_path):
    nb = copy.deepcopy(_base_notebook())
    cell = _cell_defining(nb, "log_normal_diag")
    cell["source"] = "".join(cell["source"]) + "\nresult = 1 / 0\n"
    _cell_defining(nb, "kl_normal_standard")["source"] = "def kl_normal_standard(mean, log_std)\n    return 0\n"
    path = _write(nb, tmp_path / "broken.ipynb")
    before = _fingerprint(path)
    process, report = _grade(path)
    assert process.returncode == 0
    assert _fingerprint(path) == before
    ex = _by_id(report)
    assert ex["0.1"]["score"] == 0 and "ZeroDivisionError: division by zero (line 11)" in ex["0.1"]["message"]
    assert ex["0.3"]["score"] == 0 and "syntax error: SyntaxError: expected ':' (line 1)" in ex["0.3"]["message"]
    assert ex["0.2"]["score"] == 7
    assert {c["status"] for c in report["problem_cells"]} == {"error", "syntax"}


@pytest.mark.timeout(120)
def test_grader_caps_huge_printing(tmp_path):
    path = _with(tmp_path, "print", "kl_normal_standard",
                 append="for _ in range(200000):\n    print('a line of output, again and again')\n")
    process, report = _grade(path)
    ex = _by_id(report)
    assert ex["0.3"]["score"] == 0 and "printed more than 1 MB" in ex["0.3"]["message"]
    assert ex["0.1"]["score"] == 7 and ex["0.2"]["score"] == 7
    assert len(process.stdout) < 5000  # the printing never reaches the terminal


@pytest.mark.timeout(120)
def test_grader_rejects_an_answer_that_imports_the_reference(tmp_path):
    path = _with(tmp_path, "cheat", "bernoulli_log_likelihood",
                 replace="from vae_from_scratch.numpy.distributions import bernoulli_log_likelihood\n")
    process, report = _grade(path)
    ex = _by_id(report)
    assert ex["0.2"]["status"] == "rejected" and ex["0.2"]["score"] == 0
    assert "package's own solution" in ex["0.2"]["message"]
    assert ex["0.1"]["score"] == 7 and ex["0.3"]["score"] == 7
    assert "REJECTED" in process.stdout


@pytest.mark.timeout(120)
def test_grader_restarts_after_the_process_dies_or_hangs_in_the_tests(tmp_path):
    nb = copy.deepcopy(_base_notebook())
    _cell_defining(nb, "log_normal_diag")["source"] = (
        "def log_normal_diag(x, mean, log_std):\n    import os\n    os._exit(7)\n")
    _cell_defining(nb, "bernoulli_log_likelihood")["source"] = (
        "def bernoulli_log_likelihood(x, logits):\n    while True:\n        pass\n")
    path = _write(nb, tmp_path / "dies.ipynb")
    process, report = _grade(path, "--exercise-timeout", "2")
    ex = _by_id(report)
    assert process.returncode == 0
    assert ex["0.1"]["status"] == "crashed" and "exited with status 7" in ex["0.1"]["message"]
    assert ex["0.2"]["status"] == "timeout" and ex["0.2"]["score"] == 0
    assert ex["0.3"]["score"] == 7
    assert report["restarts"] == 1  # the hang was interrupted in the child, the exit needed a restart


@pytest.mark.timeout(120)
def test_grader_scores_the_student_notebook_zero_and_grades_a_deleted_check_cell(tmp_path):
    nb = json.loads(STUDENT.read_text(encoding="utf-8"))
    # a student deleted the check cell of 0.2 but wrote the function: graded by its name anyway
    nb["cells"] = [c for c in nb["cells"] if "check(\"0.2\"" not in "".join(c["source"])]
    solved = _cell_defining(_base_notebook(), "bernoulli_log_likelihood")["source"]
    _cell_defining(nb, "bernoulli_log_likelihood")["source"] = solved
    path = _write(nb, tmp_path / "student.ipynb")
    process, report = _grade(path)
    ex = _by_id(report)
    assert ex["0.1"]["score"] == 0 and ex["0.3"]["score"] == 0
    assert ex["0.2"]["score"] == 7
    assert any("0.2 has no check cell" in note for note in report["notes"])
    assert "not implemented yet" in process.stdout


@pytest.mark.timeout(180)
def test_grader_all_writes_one_csv(tmp_path):
    submissions = tmp_path / "submissions"
    (submissions / "alice").mkdir(parents=True)
    (submissions / "bob").mkdir()
    _write(_base_notebook(), submissions / "alice" / "00_distributions.ipynb")
    _with(submissions / "bob", "00_distributions", "kl_normal_standard",
          replace="def kl_normal_standard(mean, log_std):\n    return 0.0 * mean.sum(-1)\n")
    (submissions / "carol.ipynb").write_text("not a notebook", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.run([sys.executable, "-m", "vae_from_scratch.grading", "--all", str(submissions),
                              "--csv", "grades.csv", "--json", "all.json", "--seed", "3"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170)
    assert process.returncode == 0, process.stderr
    with open(tmp_path / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_name = {row["submission"]: row for row in rows}
    assert set(by_name) == {"alice/00_distributions.ipynb", "bob/00_distributions.ipynb", "carol.ipynb"}
    assert by_name["alice/00_distributions.ipynb"]["score"] == "21"
    assert by_name["bob/00_distributions.ipynb"]["0.3"] == "0"  # a constant KL fails every test
    assert float(by_name["bob/00_distributions.ipynb"]["score"]) < 21
    assert by_name["carol.ipynb"]["status"] == "error" and "not a Jupyter notebook" in by_name["carol.ipynb"]["error"]
    assert len(json.loads((tmp_path / "all.json").read_text())["submissions"]) == 3


def test_grader_exit_codes_for_usage_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run(*args):
        return subprocess.run([sys.executable, "-m", "vae_from_scratch.grading", *args, "--json", "-"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    missing = run(str(tmp_path / "nope.ipynb"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{ not json", encoding="utf-8")
    unreadable = run(str(garbage))
    assert unreadable.returncode == 3 and "not a Jupyter notebook" in unreadable.stderr
    old = tmp_path / "old.ipynb"
    old.write_text(json.dumps({"cells": [], "nbformat": 3}), encoding="utf-8")
    assert run(str(old)).returncode == 3
    assert run().returncode == 2  # neither a notebook nor --all
    (tmp_path / "empty").mkdir()
    assert run("--all", str(tmp_path / "empty")).returncode == 2
    assert run("--all", str(tmp_path / "nothere")).returncode == 2
    assert run(str(garbage), "--timeout", "-1").returncode == 2


@pytest.mark.timeout(120)
def test_check_works_in_a_real_jupyter_kernel(tmp_path, monkeypatch):
    """The check cells of the solutions notebook, executed by a Jupyter kernel, print full marks."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.reads(json.dumps(_base_notebook()), as_version=4)
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + old if old else ""))
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert printed.count("-- all tests pass.") == 3, printed


@pytest.mark.timeout(120)
def test_grader_undoes_tampering_with_the_tests(tmp_path):
    tamper = ("import numpy\nfrom vae_from_scratch.grading import core\n"
              "numpy.allclose = lambda *args, **kwargs: True\n"
              "core.REGISTRY['0.3'].tests.clear()\n"
              "def kl_normal_standard(mean, log_std):\n    return 0.0 * mean.sum(-1)\n")
    path = _with(tmp_path, "tamper", "kl_normal_standard", replace=tamper)
    process, report = _grade(path)
    ex = _by_id(report)
    assert ex["0.3"]["max_score"] == 7 and ex["0.3"]["score"] == 0
    assert len(ex["0.3"]["tests"]) == 6
    assert ex["0.1"]["score"] == 7 and ex["0.2"]["score"] == 7
