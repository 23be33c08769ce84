"""CSR sparse codes: exactly k active dimensions, the same codes from cached embeddings as from sentence-transformers'
SparseEncoder on text, and an inverted index that ranks as a dense dot product and as SparseEncoder.similarity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from course_lib import csr
from course_lib.search import topk

TEXTS = ["Aspirin lowers the risk of heart attack.", "Vitamin D deficiency is linked to bone loss.",
         "Smoking increases the risk of lung cancer.", "Exercise improves insulin sensitivity.",
         "Statins reduce LDL cholesterol.", "Sleep loss impairs memory consolidation.",
         "Obesity decreases life quality.", "Antibiotics do not treat viral infections."]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def emb():
    """300 unit vectors, each a positive mix of 4 of 40 fixed directions: data a sparse code can hold."""
    rng = np.random.default_rng(3)
    atoms = rng.standard_normal((40, 384))
    mix = np.zeros((300, 40))
    for row in mix:
        row[rng.choice(40, 4, replace=False)] = rng.uniform(0.5, 1.5, 4)
    return unit(mix @ atoms).astype(np.float32)


@pytest.fixture(scope="module")
def trained(emb):
    head, loss = csr.csr_setup(384, 128, 8, k_aux=32, seed=1)
    info = csr.train_csr(loss, emb, steps=40, batch_size=128, lr=3e-3, show_progress=False)
    return head[0], info


def test_setup_is_the_sentence_transformers_head_and_loss():
    from sentence_transformers.sparse_encoder.losses import CSRLoss
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    head, loss = csr.csr_setup(384, 64, 4, k_aux=8, gamma=0.5)
    (sae,) = list(head)
    assert isinstance(sae, SparseAutoEncoder) and isinstance(loss, CSRLoss)
    assert (sae.input_dim, sae.hidden_dim, sae.k, sae.k_aux) == (384, 64, 4, 8)
    assert loss.model is head and loss.gamma == 0.5


@pytest.mark.parametrize("k", [1, 8, 20])
def test_every_code_has_exactly_k_active_dims(trained, emb, k):
    sae, _ = trained
    codes = csr.encode_codes(emb, sae, k=k)
    assert codes.shape == (300, 128) and codes.dtype == np.float32
    assert (csr.active_dims(codes) == k).all()
    assert (codes.data > 0).all()


def reconstruction_error(sae, x):
    """Mean squared error of the embeddings rebuilt from their top-k codes."""
    with torch.no_grad():
        t = torch.from_numpy(x)
        return float(((sae({"sentence_embedding": t.clone()})["decoded_embedding_k"] - t) ** 2).mean())


def test_training_lowers_the_reconstruction_error(trained, emb):
    sae, info = trained
    fresh = csr.csr_setup(384, 128, 8, k_aux=32, seed=1)[0][0]
    assert len(info["losses"]) == 40
    assert reconstruction_error(sae, emb) < 0.5 * reconstruction_error(fresh, emb)


def test_supervised_training_uses_the_pairs(emb):
    head, loss = csr.csr_setup(384, 128, 8, k_aux=32, gamma=1.0, seed=1)
    pairs = (emb[:50] + 0.1 * emb[50:100], emb[:50])
    info = csr.train_csr(loss, emb, pairs=pairs, steps=3, batch_size=64, show_progress=False)
    plain = csr.train_csr(csr.csr_setup(384, 128, 8, k_aux=32, seed=1)[1], emb, steps=3, batch_size=64,
                          show_progress=False)
    assert info["supervised"] and not plain["supervised"]
    assert info["losses"][0] > plain["losses"][0]  # the contrastive term is added to the same reconstruction


def test_inverted_index_ranks_as_a_dense_dot_product_of_the_same_codes(trained, emb):
    sae, _ = trained
    docs, queries = csr.encode_codes(emb[:250], sae), csr.encode_codes(emb[250:], sae)
    s, i = csr.search(csr.build_index(docs), queries, 20)
    ds, di = topk(queries.toarray(), docs.toarray(), 20)
    np.testing.assert_allclose(s, ds, rtol=1e-5, atol=1e-7)
    # equal scores may swap places; where the scores differ, the order must agree exactly
    distinct = np.abs(np.diff(ds, axis=1)).min(axis=1) > 1e-6
    np.testing.assert_array_equal(i[distinct], di[distinct])
    assert i.dtype == np.int64 and s.dtype == np.float32


def test_cached_codes_equal_the_sparse_encoder_on_text_and_its_similarity(trained, model):
    sae, _ = trained
    encoder = csr.csr_encoder(sae, base=model)
    want = encoder.encode(TEXTS, convert_to_tensor=True).to_dense().numpy()  # (8, 128)
    got = csr.encode_codes(model.encode(TEXTS), sae)
    np.testing.assert_allclose(got.toarray(), want, atol=1e-5)
    sim = encoder.similarity(torch.from_numpy(want[:3]), torch.from_numpy(want)).numpy()  # (3, 8)
    s, i = csr.search(csr.build_index(got), got[:3], 8)
    np.testing.assert_allclose(s, np.take_along_axis(sim, i, axis=1), rtol=1e-4, atol=1e-6)
    assert (np.diff(s, axis=1) <= 1e-7).all()


def test_head_is_trained_once_and_then_loaded(tmp_cache, emb):
    sae, info = csr.csr_head(emb, k=4, hidden_dim=64, steps=5, show_progress=False)
    again, info2 = csr.csr_head(emb, k=4, hidden_dim=64, steps=5, show_progress=False)
    assert not info["cached"] and info2["cached"]
    assert len(list((tmp_cache / "models").glob("csr-*"))) == 1
    np.testing.assert_array_equal(csr.encode_codes(emb, sae).toarray(), csr.encode_codes(emb, again).toarray())
    csr.csr_head(emb, k=4, hidden_dim=64, steps=6, show_progress=False)  # new settings, new entry
    assert len(list((tmp_cache / "models").glob("csr-*"))) == 2


def test_code_bytes_count_a_value_and_an_index_per_active_dim():
    assert csr.code_bytes(32, 1536) == 32 * 6
    assert csr.code_bytes(1, 70000) == 8


@pytest.mark.parametrize("call, match", [
    (lambda: csr.csr_setup(384, 64, 32), "4 \\* k"),
    (lambda: csr.csr_setup(384, 64, 0), "k"),
    (lambda: csr.train_csr("loss", np.ones((3, 4))), "CSRLoss"),
    (lambda: csr.build_index(np.ones((2, 3))), "scipy sparse"),
    (lambda: csr.search(csr.build_index(sp.csr_matrix(np.eye(3))), sp.csr_matrix(np.ones((1, 4))), 1), "code dims"),
    (lambda: csr.search(csr.build_index(sp.csr_matrix(np.eye(3))), sp.csr_matrix(np.ones((1, 3))), 4), "k"),
    (lambda: csr.build_index(sp.csr_matrix(np.array([[np.nan, 1.0]]))), "NaN"),
])
def test_bad_input_names_the_problem(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_training_refuses_embeddings_of_the_wrong_width(emb):
    _, loss = csr.csr_setup(384, 64, 4, k_aux=8)
    with pytest.raises(ValueError, match="input_dim=384"):
        csr.train_csr(loss, emb[:, :100], steps=1)
    full_model_loss = csr.csr_setup(384, 64, 4, k_aux=8)[1]
    full_model_loss.model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Identity())
    with pytest.raises(ValueError, match="alone"):
        csr.train_csr(full_model_loss, emb, steps=1)
