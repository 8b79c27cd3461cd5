"""Chapter 7's verdicts on IAF against its recorded paired comparison (book/results/ch07_flows.json):
each sentence of the list after the paired table must agree with the differences and their paired
standard errors, and the chapter must print what the record holds."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CH7 = ROOT / "book" / "07_normalizing_flows.ipynb"


@pytest.fixture(scope="module")
def record():
    return json.loads((ROOT / "book" / "results" / "ch07_flows.json").read_text())


@pytest.fixture(scope="module")
def chapter():
    nb = json.loads(CH7.read_text(encoding="utf-8"))
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    return prose, printed


def _diff(study, name):
    run = study["runs"][name]
    return run["log_px_minus_diagonal"], run["log_px_minus_diagonal_se"]


def test_the_paired_studies_are_whole_test_set_and_same_k(record):
    for key in ("paired", "paired_seed1", "paired_100"):
        assert record[key]["eval_n"] == 10000 and record[key]["eval_k"] == 1000
        for name, run in record[key]["runs"].items():
            if name != "diagonal":
                assert 0 < run["log_px_minus_diagonal_se"] < 0.1


def test_the_chapter_prints_every_paired_difference(record, chapter):
    _, printed = chapter
    for key in ("paired", "paired_seed1", "paired_100"):
        for name, run in record[key]["runs"].items():
            if name == "diagonal":
                continue
            line = (f"{run['log_px_minus_diagonal']:+.2f} +- {run['log_px_minus_diagonal_se']:.2f}")
            assert re.search(rf"{re.escape(name)}\s.*{re.escape(line)}", printed), (key, name)


def test_each_verdict_agrees_with_the_record(record, chapter):
    prose, _ = chapter
    d, se = _diff(record["paired"], "iaf")
    assert "IAF as first set up here loses" in prose and d < -5 * se
    d, se = _diff(record["paired"], "iaf_fb2_ctx200")
    assert "not resolved" in prose and abs(d) < 3 * se
    assert "With free bits, IAF beats the diagonal Gaussian" in prose
    for key in ("paired", "paired_seed1", "paired_100"):
        d, se = _diff(record[key], "iaf_fb2_ctx200_freebits")
        assert d > 5 * se, key
        assert f"{d:+.2f} \\pm {se:.2f}" in prose, key
    d, se = _diff(record["paired"], "diagonal_freebits")
    assert "Free bits are not a general improvement" in prose and d < -5 * se
