"""PCA and the Matryoshka-Adaptor: the losses against a direct NumPy computation, PCA against faiss.PCAMatrix,
and training that does what it claims on data built to need it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import adaptor


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cos(a, b):
    return unit(a) @ unit(b).T


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two that wait on each other (and on anything else running)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    full = rng.standard_normal((40, 12))
    adapted = full + 0.3 * rng.standard_normal((40, 12))
    return full, adapted


@pytest.mark.parametrize("dims", [(12,), (6, 3), (12, 8, 4, 1)])
def test_pairwise_loss_is_the_mean_gap_of_all_pair_cosines_summed_over_prefixes(data, dims):
    full, adapted = data
    want = sum(np.abs(cos(full, full) - cos(adapted[:, :m], adapted[:, :m])).mean() for m in dims)
    got = adaptor.pairwise_similarity_loss(torch.from_numpy(full), torch.from_numpy(adapted), dims)
    assert float(got) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("k", [1, 5])
def test_topk_loss_is_the_mean_gap_over_each_rows_neighbours(data, k):
    full, adapted = data
    nn = adaptor.nearest_neighbors(full, k)
    want = 0.0
    for m in (12, 4):
        gaps = [abs(cos(full[i:i + 1], full[j:j + 1])[0, 0] - cos(adapted[i:i + 1, :m], adapted[j:j + 1, :m])[0, 0])
                for i in range(len(full)) for j in nn[i]]
        want += np.mean(gaps)
    got = adaptor.topk_similarity_loss(torch.from_numpy(full), torch.from_numpy(adapted), torch.from_numpy(nn), (12, 4))
    assert float(got) == pytest.approx(want, rel=1e-10)


def test_reconstruction_loss_is_the_mean_l2_distance(data):
    full, adapted = data
    want = np.linalg.norm(adapted - full, axis=1).mean()
    assert float(adaptor.reconstruction_loss(torch.from_numpy(full), torch.from_numpy(adapted))) == pytest.approx(want)


def test_nearest_neighbors_match_a_brute_force_ranking(data):
    full, _ = data
    sims = cos(full, full)
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(adaptor.nearest_neighbors(full.astype(np.float32), 5), want)


def test_pca_matches_faiss_pca_matrix():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 16)) * np.linspace(3, 0.2, 16)).astype(np.float32)  # distinct variances
    pca = adaptor.pca_fit(x)
    ref = faiss.PCAMatrix(16, 6)
    ref.train(x)
    theirs = ref.apply(x)  # (N, 6): centred, rotated, not normalized
    ours = (x - pca.mean) @ pca.components[:, :6]
    signs = np.sign((ours * theirs).sum(axis=0))  # an axis's sign is free: match it column by column
    np.testing.assert_allclose(ours * signs, theirs, atol=2e-4)
    np.testing.assert_allclose(adaptor.pca_reduce(x, pca, 6), unit(ours), atol=1e-5)
    np.testing.assert_allclose(pca.variance[:6], np.var(ours, axis=0, ddof=1), rtol=1e-4)
    assert (np.diff(pca.variance) <= 1e-6).all()


def prefix_gap(full, emb, m):
    return np.abs(cos(full, full) - cos(emb[:, :m], emb[:, :m])).mean()


def test_the_untrained_adaptor_is_the_identity_and_training_moves_structure_into_the_prefix():
    rng = np.random.default_rng(1)
    # 300 points whose spread lives in the *last* 6 of 24 dims: the first 6 dims say almost nothing about them
    x = np.concatenate([0.05 * rng.standard_normal((300, 18)), rng.standard_normal((300, 6))], axis=1).astype(np.float32)
    res = adaptor.train_adaptor(x, dims=(6,), k=5, steps=150, batch_size=128, hidden=64, lr=1e-2, init="identity",
                                show_progress=False)
    assert res["losses"][-1] < 0.5 * res["losses"][0], res["losses"][::30]
    before, after = prefix_gap(x, x, 6), prefix_gap(x, adaptor.adapt(x, res), 6)
    assert after < 0.6 * before, (before, after)
    untrained = {**res, "w2": np.zeros_like(res["w2"]), "b2": np.zeros_like(res["b2"])}  # identity start, no rotation
    np.testing.assert_allclose(adaptor.adapt(x, untrained), unit(x), atol=1e-6)
    # the full embedding stays close (the reconstruction term): full-dim cosines barely move
    assert prefix_gap(x, adaptor.adapt(x, res), 24) < 0.1


def test_the_pca_start_is_pca_and_training_improves_on_it():
    rng = np.random.default_rng(3)
    # a curved cloud: PCA (linear) cannot put all of its neighbourhood structure into 2 dims
    t = rng.uniform(0, 3 * np.pi, 400)
    x = np.stack([np.cos(t), np.sin(t), t / 3, *(0.05 * rng.standard_normal((5, 400)))], axis=1).astype(np.float32)
    untrained = adaptor.train_adaptor(x, dims=(2,), k=5, steps=1, lr=1e-12, hidden=64, show_progress=False)
    pca = adaptor.pca_fit(x)
    np.testing.assert_allclose(adaptor.adapt(x, untrained, 2), adaptor.pca_reduce(x, pca, 2), atol=1e-4)
    res = adaptor.train_adaptor(x, dims=(2,), k=5, steps=200, batch_size=200, hidden=64, lr=1e-2, show_progress=False)
    nn = adaptor.nearest_neighbors(x, 5)

    def neighbour_gap(y):  # the top-k loss at the kept dims, computed directly
        return np.mean([abs(cos(x[i:i + 1], x[j:j + 1])[0, 0] - cos(y[i:i + 1], y[j:j + 1])[0, 0])
                        for i in range(len(x)) for j in nn[i]])

    before, after = neighbour_gap(adaptor.pca_reduce(x, pca, 2)), neighbour_gap(adaptor.adapt(x, res, 2))
    assert after < 0.8 * before, (before, after)


def test_the_supervised_adaptor_also_learns_the_pairs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    q = x[:50] + 0.5 * rng.standard_normal((50, 16)).astype(np.float32)  # queries near their documents
    res = adaptor.train_adaptor(x, dims=(8, 4), k=3, steps=60, batch_size=64, hidden=32, lr=1e-2,
                                pairs=(q, x[:50]), show_progress=False)
    assert res["supervised"] and res["losses"][-1] < res["losses"][0]
    again = adaptor.train_adaptor(x, dims=(8, 4), k=3, steps=60, batch_size=64, hidden=32, lr=1e-2,
                                  pairs=(q, x[:50]), show_progress=False)
    np.testing.assert_array_equal(res["w2"], again["w2"])  # seeded: the same run twice gives the same adaptor


def test_the_same_seed_trains_the_same_adaptor_on_two_threads():
    """With two threads, the top-k loss's backward (rows gathered many times, gradients scattered back) summed in
    another order from run to run: the same seed gave weights 0.005 apart after 40 steps, and a corpus-only adaptor
    0.15 points of nDCG@10 apart. The trainer now runs with deterministic algorithms, on a generator of its own."""
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((1500, 64))).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for draws in (5, 1000):
            torch.manual_seed(11)
            torch.rand(draws)  # whatever ran before
            runs.append(adaptor.train_adaptor(x, dims=(32, 16), k=10, steps=25, hidden=64, show_progress=False))
            torch.manual_seed(11)
            torch.rand(draws)
            expected = torch.rand(1)
            torch.manual_seed(11)
            torch.rand(draws)
            adaptor.train_adaptor(x, dims=(32, 16), k=10, steps=1, hidden=64, show_progress=False)
            assert torch.equal(torch.rand(1), expected)  # the caller's generator is left where it was
            assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)
    for name in ("w1", "b1", "w2", "b2"):
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
