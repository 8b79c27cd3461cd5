"""The prose of chapter 5 against the numbers the chapter prints (its stored outputs).

A sentence in a chapter that quotes or interprets a measurement must agree with the measurement the
notebook stores; these tests read ``book/05_vae.ipynb`` (outputs included, as nbval checks them) and
fail when a printed number and the sentence about it disagree:

* the decay of the IWAE bias on MNIST: the printed ratio (L_5000 - L_50) / (L_5000 - L_500), its
  standard error and its verdict against the 1/k prediction, and the sentence that reads them;
* the approximation/amortization gaps: a check that a wrong log-weight function fails (two proposals,
  one log p(x)), not the tautological "approximation gap > 0"; a unit test below shows on the
  linear-Gaussian testbed that this check passes for correct log-weights and fails for a typical bug;
* the summary's sentence on what biases the gap decomposition (a finite k biases only the
  approximation gap);
* standard errors printed next to the comparisons the chapter draws (IWAE- vs ELBO-trained model, the
  recorded test NLL, amortization vs approximation gap), and a verdict that agrees with them.
"""

import json
import re
from pathlib import Path

import numpy as onp
import pytest
from scipy.special import logsumexp

from vae_from_scratch.numpy import distributions as nd
from vae_from_scratch.numpy import testbed as ntb

ROOT = Path(__file__).resolve().parent.parent
CH5 = ROOT / "book" / "05_vae.ipynb"
NUMBER = r"(-?\d+(?:\.\d+)?)"


@pytest.fixture(scope="module")
def ch5():
    return json.loads(CH5.read_text(encoding="utf-8"))


def outputs(nb):
    """All printed text of the notebook, one string."""
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append("".join(out["text"]))
    return "".join(texts)


def markdown(nb):
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def printed(nb, pattern):
    """The groups of the one printed line matching ``pattern`` (a regex)."""
    found = re.findall(pattern, outputs(nb))
    assert len(found) == 1, f"expected one printed line matching {pattern!r}, found {len(found)}"
    return found[0]


def verdict(nb, prefix):
    """The True/False printed on the line that contains ``prefix``."""
    return printed(nb, re.escape(prefix) + r"[^\n]*?(True|False)\n") == "True"


def summary(nb):
    cell = next(m for m in markdown(nb) if "## Summary" in m)
    return cell[cell.index("## Summary"):]


# --- item: the MNIST IWAE bias does not fall like 1/k --------------------------------------------


def test_iwae_decay_ratio_and_its_sentence_agree(ch5):
    to_50, to_500, ratio, se = map(float, printed(
        ch5, rf"L_5000 - L_50 = {NUMBER}, L_5000 - L_500 = {NUMBER} nats: ratio {NUMBER} \+- {NUMBER}"))
    assert ratio == pytest.approx(to_50 / to_500, abs=0.15)   # the printed numbers are rounded
    predicted = (1 / 50 - 1 / 5000) / (1 / 500 - 1 / 5000)
    slower = verdict(ch5, "the bias falls more slowly than 1 / k")
    assert slower == (predicted - ratio > 5 * se)
    prose = next(m for m in markdown(ch5) if "regime" in m and "1/k" in m)
    quoted = float(re.search(r"stand in a ratio of about (\d+)", prose).group(1))
    assert abs(quoted - ratio) < 1.0, "the sentence quotes a different ratio than the chapter prints"
    if slower:
        assert "more slowly than $1/k$" in prose
        assert "The same is true of the MNIST estimates" not in prose


# --- item: a check of the gap decomposition that can fail ------------------------------------------


def test_gap_section_prints_a_check_that_can_fail(ch5):
    text = outputs(ch5)
    assert "approximation gap > 0 for every image" not in text
    apart, se = map(float, printed(ch5, rf"minus proposal q\*: {NUMBER} \+- {NUMBER} nats"))
    agree = verdict(ch5, "two proposals, one log p(x)")
    assert agree == (abs(apart) < 5 * se) and agree
    buggy = float(printed(ch5, rf"the same check with that bug: {NUMBER} nats apart"))
    assert buggy == pytest.approx(apart + 16 * onp.log(1.5), abs=0.02)   # K = 16 latent dims
    assert not verdict(ch5, "the same check with that bug")


def _is_estimate(log_w):
    """log (1/k) sum exp(log_w) over axis 0, and its delta-method standard error."""
    k = log_w.shape[0]
    est = logsumexp(log_w, axis=0) - onp.log(k)
    ratio = onp.exp(log_w - est)
    return est, onp.sqrt(ratio.var(axis=0, ddof=1) / k)


def _two_proposal_gap(bug, seed=0, n=20, k=4000):
    """Mean difference (in standard errors) of the importance-sampled log p(x) under q and under q
    widened 1.5x, on the testbed, with a correct log q or with log q from the log-variance."""
    rng = onp.random.default_rng(seed)
    D, K = 6, 3
    # orthogonal columns: a factorized posterior, so a diagonal q can come close to it
    W = onp.linalg.qr(rng.normal(size=(D, K)))[0] * onp.array([2.0, 1.0, 0.5])
    b, log_s = rng.normal(size=D), onp.log(0.5)
    x, _ = ntb.sample(rng, n=n, W=W, b=b, log_s=log_s)
    mean, cov = ntb.posterior(x, W, b, log_s)
    mean = mean + 0.2 * onp.sqrt(onp.diag(cov))                          # off-centre and
    log_std = onp.broadcast_to(0.5 * onp.log(onp.diag(cov)) - 0.1, mean.shape)  # too narrow
    estimates = []
    for widen in (0.0, onp.log(1.5)):
        ls = log_std + widen
        z = mean + onp.exp(ls) * rng.standard_normal((k, n, K))
        log_q = nd.log_normal_diag(z, mean, ls)
        if bug:
            log_q = log_q - ls.sum(-1)            # -2 log sigma instead of -log sigma
        log_w = onp.stack([ntb.log_joint(x[i], z[:, i], W, b, log_s) for i in range(n)], 1) - log_q
        estimates.append(_is_estimate(log_w))
    (e0, s0), (e1, s1) = estimates
    diff = e1 - e0
    se = onp.sqrt((s0**2 + s1**2).sum()) / n
    exact = ntb.log_marginal(x, W, b, log_s)
    return diff.mean() / se, onp.abs(e0 - exact).max()


def test_two_proposal_check_passes_for_correct_log_weights_and_fails_for_a_bug():
    z_ok, err = _two_proposal_gap(bug=False)
    assert err < 0.05                   # the estimates themselves are right (exact log p(x))
    assert abs(z_ok) < 5
    z_bug, _ = _two_proposal_gap(bug=True)
    assert abs(z_bug) > 50              # K log 1.5 = 1.2 nats apart, many standard errors


# --- item: the summary on what biases the gap decomposition ---------------------------------------


def test_summary_says_finite_k_biases_only_the_approximation_gap(ch5):
    bullet = next(b for b in summary(ch5).split("\n- ") if "amortization gap" in b)
    flat = " ".join(bullet.split())
    assert not re.search(r"finite \$k\$ can only make\s+(?:it|them|both)?\s*smaller", flat)
    assert "a finite $k$ biases only the approximation gap" in flat


# --- item: standard errors next to the comparisons -----------------------------------------------


def test_iwae_versus_elbo_training_prints_a_paired_standard_error(ch5):
    diff, se = map(float, printed(
        ch5, rf"IWAE-trained minus ELBO-trained, test log p\(x\): {NUMBER} \+- {NUMBER} nats"))
    assert 0 < se < 0.5
    beyond = printed(ch5, r"IWAE-trained minus ELBO-trained, test log p\(x\):.*beyond 5 SE: (True|False)")
    assert (beyond == "True") == (abs(diff) > 5 * se)


def test_recorded_test_nll_is_printed_with_its_standard_error(ch5):
    record = json.loads((ROOT / "book" / "results" / "ch05_quality.json").read_text())
    test = record["runs"]["vae_100epochs"]["test"]
    nll, se = map(float, printed(ch5, rf"100 epochs: {NUMBER} \+- {NUMBER} nats"))
    assert nll == pytest.approx(test["nll"], abs=0.006)
    assert se == pytest.approx(test["log_likelihood_sem"], abs=0.006)


def test_amortization_gap_claim_is_a_paired_test_that_agrees_with_the_prose(ch5):
    excess, se = map(float, printed(ch5, rf"amortization minus approximation gap: {NUMBER} \+- {NUMBER}"))
    larger = verdict(ch5, "the amortization gap is the larger one")
    assert larger == (excess > 5 * se)
    claims = [m for m in markdown(ch5) if "amortization gap is the larger one" in m]
    assert claims, "the chapter no longer states which gap is larger: update this test"
    assert larger, "the prose says the amortization gap is the larger one, the printed test does not"


def test_burda_schedule_result_is_printed_as_recorded(ch5):
    """Chapter 5 shows the Burda-schedule run's record: epochs done, and once evaluated the test NLL
    on all 10,000 images with k = 5000, its standard error and the difference to 88.71."""
    record = json.loads((ROOT / "book" / "results" / "ch05_burda_schedule.json").read_text())
    text = outputs(ch5)
    assert f"{record['epochs_done']:,} of {record['epochs_total']:,} epochs" in text
    final = record.get("evaluation")
    if record["complete"]:
        assert final is not None, "the schedule is complete but the record holds no evaluation"
    if final is None:
        assert "not evaluated yet" in text
        return
    assert (final["k"], final["n"], final["published_nll"]) == (5000, 10000, 88.71)
    nll, se = map(float, printed(ch5, rf"test NLL {NUMBER} \+- {NUMBER} nats \(k = 5,000"))
    assert nll == pytest.approx(final["test_nll"], abs=0.006)
    assert se == pytest.approx(final["test_nll_se"], abs=0.006) and 0 < se < 1
    diff, diff_se = map(float, printed(ch5, rf"ours minus theirs \+?{NUMBER} \+- {NUMBER}"))
    assert diff == pytest.approx(final["test_nll"] - 88.71, abs=0.011)
    assert diff_se == pytest.approx(se, abs=0.006)
    prose = "".join(m for m in markdown(ch5) if "88.71" in m and "ours" in m.lower())
    assert f"{final['test_nll']:.2f}" in prose, "the prose does not quote the recorded test NLL"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{final['test_nll']:.2f}" in readme, "README's quality line does not show the recorded NLL"
