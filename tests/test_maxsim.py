"""MaxSim against an independent reference, against PyLate (run in the peer environment) and its masking rule."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from course_lib import maxsim as M
from course_lib.paths import REPO_ROOT

PEER_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"


def _reference(q, qm, d, dm):
    """MaxSim from its definition, one pair at a time, in float64."""
    out = np.zeros((len(q), len(d)))
    for a in range(len(q)):
        for b in range(len(d)):
            out[a, b] = sum(max(float(np.dot(q[a, i], d[b, j])) for j in range(d.shape[1]) if dm[b, j])
                            for i in range(q.shape[1]) if qm[a, i])
    return out


def _random(seed, bq=3, bd=7, lq=5, ld=9, dim=8):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((bq, lq, dim)).astype(np.float32)
    d = rng.standard_normal((bd, ld, dim)).astype(np.float32)
    qm = np.arange(lq)[None, :] < rng.integers(1, lq + 1, bq)[:, None]  # variable lengths, at least one token
    dm = np.arange(ld)[None, :] < rng.integers(1, ld + 1, bd)[:, None]
    return q, qm, d, dm


@pytest.mark.parametrize("seed", range(5))
def test_numpy_torch_loop_and_chunked_equal_the_reference(seed):
    q, qm, d, dm = _random(seed)
    ref = _reference(q, qm, d, dm)
    np.testing.assert_allclose(M.maxsim(q, qm, d, dm), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(M.maxsim(q, qm, d, dm, chunk_size=2), ref, rtol=1e-5, atol=1e-5)
    t = M.maxsim(torch.from_numpy(q), torch.from_numpy(qm), torch.from_numpy(d), torch.from_numpy(dm), chunk_size=3)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(M.maxsim_loop(q, qm, d, dm), ref, rtol=1e-5, atol=1e-5)


def _pylate_rule(q, qm, d, dm):
    """PyLate 1.6's colbert_scores (torch backend), transcribed: similarities multiplied by the document mask."""
    sim = np.einsum("ash,bth->abst", q, d) * dm[None, :, None, :]
    return (sim.max(axis=3) * qm[:, None, :]).sum(axis=2)


def test_padding_never_wins_the_max_unlike_multiplying_by_the_mask():
    q = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
    d = np.array([[[-1.0, 0.0], [0.0, -1.0], [5.0, 5.0]]], np.float32)  # every real similarity is negative
    dm = np.array([[True, True, False]])
    assert M.maxsim(q, None, d, dm).tolist() == [[0.0]]  # -1 + ... : max over real tokens of each query token
    assert _pylate_rule(q, np.ones((1, 2)), d, dm).tolist() == [[0.0]]
    q2 = np.array([[[1.0, 0.0]]], np.float32)
    d2 = np.array([[[-1.0, 0.0], [-0.5, 0.0], [9.0, 9.0]]], np.float32)
    assert M.maxsim(q2, None, d2, dm).tolist() == [[-0.5]]
    assert _pylate_rule(q2, np.ones((1, 1)), d2, dm).tolist() == [[0.0]]  # the padded 0 beat -0.5


def test_the_two_rules_differ_exactly_where_a_query_token_has_only_negative_similarities():
    for seed in range(5):
        q, qm, d, dm = _random(seed, lq=4, ld=6, dim=4)  # few dims: all-negative rows happen often
        ours, theirs = M.maxsim(q, qm, d, dm), _pylate_rule(q, qm, d, dm)
        padded = ~dm.all(axis=1)
        sim = np.einsum("ash,bth->abst", q, d)
        all_negative = (np.where(dm[None, :, None, :], sim, -np.inf).max(axis=3) < 0) & qm[:, None, :]
        differs = ~np.isclose(ours, theirs, atol=1e-5)
        np.testing.assert_array_equal(differs, all_negative.any(axis=2) & padded[None, :])
        assert (theirs >= ours - 1e-5).all()  # multiplying can only raise a score


@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="the peer environment is made by `make peers` (make test does)")
def test_against_pylate_itself_in_the_peer_environment(tmp_path):
    q, qm, d, dm = _random(1, bq=4, bd=50, lq=8, ld=20, dim=16)
    positive_q = np.abs(q)  # with non-negative vectors every similarity is >= 0, so the two rules agree
    positive_d = np.abs(d)
    np.savez(tmp_path / "in.npz", q=q, q_mask=qm, d=d, d_mask=dm)
    np.savez(tmp_path / "pos.npz", q=positive_q, q_mask=qm, d=positive_d, d_mask=dm)
    for name in ("in", "pos"):
        subprocess.run([str(PEER_PYTHON), str(REPO_ROOT / "benchmarks" / "peers" / "pylate_scores.py"),
                        str(tmp_path / f"{name}.npz"), str(tmp_path / f"{name}-out.npz")], check=True, timeout=300)
    pylate_scores = np.load(tmp_path / "in-out.npz")["scores"]
    np.testing.assert_allclose(pylate_scores, _pylate_rule(q, qm, d, dm), rtol=1e-5, atol=1e-4)  # our transcription
    np.testing.assert_allclose(np.load(tmp_path / "pos-out.npz")["scores"], M.maxsim(positive_q, qm, positive_d, dm),
                               rtol=1e-5, atol=1e-4)
    assert not np.allclose(pylate_scores, M.maxsim(q, qm, d, dm), atol=1e-3)  # on signed data they differ


def test_bad_input_is_named():
    q, qm, d, dm = _random(0)
    bad = dm.copy()
    bad[4] = False
    with pytest.raises(ValueError, match=r"d row 4 has no valid token"):
        M.maxsim(q, qm, d, bad)
    with pytest.raises(ValueError, match="same dims, got 8 and 4"):
        M.maxsim(q, qm, d[:, :, :4], dm)
    with pytest.raises(ValueError, match=r"q_mask must have shape \(3, 5\)"):
        M.maxsim(q, qm[:, :2], d, dm)
    with pytest.raises(ValueError, match=r"must be 3-D \(batch, tokens, dims\)"):
        M.maxsim(q[0], None, d, dm)
    with pytest.raises(TypeError, match="both be numpy arrays or both torch tensors"):
        M.maxsim(torch.from_numpy(q), None, d, dm)


def test_two_stage_ranking_equals_full_ranking_restricted_to_the_shortlist():
    q, qm, d, dm = _random(3, bq=4, bd=40)
    full_s, full_i = M.rank_maxsim(q, qm, d, dm, k=40)
    cand = np.stack([np.arange(40)[::-1]] * 4)  # every document, in another order
    s, i = M.rank_maxsim(q, qm, d, dm, k=5, candidates=cand)
    np.testing.assert_array_equal(i, full_i[:, :5])
    np.testing.assert_allclose(s, full_s[:, :5], rtol=1e-6)
