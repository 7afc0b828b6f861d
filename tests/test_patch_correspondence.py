"""`patch_correspondence` against a brute-force NumPy loop over samples and tokens."""

import numpy as np
import pytest
import tensorflow as tf
from loss_helpers import run_loss_test

from keras_eqssl.losses.patch_correspondence import patch_correspondence

B, NS, NT, D = 3, 9, 16, 5


# --- reference ----------------------------------------------------------------------------------
def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _one_direction(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[float, set[int], set[int]]:
    """Mean cos over the K most confident queries; also the query and key indices used."""
    matches = []
    for i in range(len(queries)):
        scores = [_cos(queries[i], keys[j]) for j in range(len(keys))]
        j_best = int(np.argmax(scores))
        matches.append((scores[j_best], i, j_best))
    matches.sort(key=lambda m: -m[0])
    kept = matches[: min(k, len(queries))]
    return float(np.mean([c for c, _, _ in kept])), {i for _, i, _ in kept}, {j for _, _, j in kept}


def brute_force(student: np.ndarray, teacher: np.ndarray, k: int):
    """The loss, and per sample the student and teacher token indices that enter it."""
    student, teacher = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
    losses, used_student, used_teacher = [], [], []
    for b in range(len(student)):
        cos_st, kept_s, matched_t = _one_direction(student[b], teacher[b], k)
        cos_ts, kept_t, matched_s = _one_direction(teacher[b], student[b], k)
        losses.append(-0.5 * (cos_st + cos_ts))
        used_student.append(kept_s | matched_s)
        used_teacher.append(kept_t | matched_t)
    return float(np.mean(losses)), used_student, used_teacher


def _tokens(rng):
    return rng.normal(size=(B, NS, D)).astype("float32"), rng.normal(size=(B, NT, D)).astype("float32")


BAD_PAIRS = [
    (np.zeros((B, NS, D), "float32"), np.zeros((B, NT, D + 1), "float32")),  # dim mismatch
    (np.zeros((B, NS, D), "float32"), np.zeros((B + 1, NT, D), "float32")),  # batch mismatch
    (np.zeros((B, D), "float32"), np.zeros((B, NT, D), "float32")),  # student not (B, N, D)
    (np.zeros((B, NS, D), "float32"), np.zeros((B, NT, D, 1), "float32")),  # teacher not (B, N, D)
]


# --- value, graph mode, dtypes, gradients, permutation, bad input -------------------------------
@pytest.mark.parametrize("k", [1, 4, 9, 20])
def test_matches_brute_force(rng, k):
    student, teacher = _tokens(rng)
    expected, _, _ = brute_force(student, teacher, k)
    run_loss_test(
        patch_correspondence,
        (student, teacher),
        {"num_matches": k},
        expected=expected,
        grad_args=(0,),
        no_grad_args=(1,),
        bad_args=BAD_PAIRS,
    )


def test_fewer_matches_keep_more_confident_pairs(rng):
    # Keeping only the most confident matches can only make the mean cosine larger (the loss smaller).
    student, teacher = _tokens(rng)
    values = [float(patch_correspondence(student, teacher, k)) for k in (1, 4, 9, 16)]
    assert values == sorted(values), values


# --- the top-K really selects -------------------------------------------------------------------
def _replace_unused(tokens, which, rng, other, k, student_side: bool):
    """Replaces token `which` of sample 0 by random vectors until it stays unused in both directions."""
    for _ in range(200):
        changed = tokens.copy()
        changed[0, which] = rng.normal(size=D) * rng.uniform(0.5, 2.0)
        args = (changed, other) if student_side else (other, changed)
        _, used_s, used_t = brute_force(*args, k)
        if which not in (used_s if student_side else used_t)[0]:
            return changed
    raise AssertionError("no replacement kept the token out of the matches")


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_unused_token_does_not_change_the_loss(rng, side):
    k = 3
    student, teacher = _tokens(rng)
    _, used_s, used_t = brute_force(student, teacher, k)
    used = (used_s if side == "student" else used_t)[0]
    size = NS if side == "student" else NT
    unused = [i for i in range(size) if i not in used]
    assert unused, "every token is matched; the test needs a smaller k"
    which = unused[0]
    if side == "student":
        changed = _replace_unused(student, which, rng, teacher, k, student_side=True)
        new_args = (changed, teacher)
    else:
        changed = _replace_unused(teacher, which, rng, student, k, student_side=False)
        new_args = (student, changed)
    before = float(patch_correspondence(student, teacher, k))
    after = float(patch_correspondence(*new_args, k))
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    # ...while keeping every match (K = all tokens) does see the change
    full = max(NS, NT)
    assert (
        abs(float(patch_correspondence(*new_args, full)) - float(patch_correspondence(student, teacher, full))) > 1e-4
    )


def test_student_gradient_only_reaches_matched_tokens(rng):
    k = 2
    student, teacher = _tokens(rng)
    _, used_s, _ = brute_force(student, teacher, k)
    s = tf.Variable(student)
    with tf.GradientTape() as tape:
        loss = patch_correspondence(s, teacher, k)
    grad = np.abs(tape.gradient(loss, s).numpy()).sum(axis=2)  # (B, Ns)
    for b in range(B):
        for i in range(NS):
            assert (grad[b, i] > 0) == (i in used_s[b]), (b, i, grad[b], used_s[b])


def test_teacher_gets_no_gradient_and_student_does(rng):
    student, teacher = _tokens(rng)
    s, t = tf.Variable(student), tf.Variable(teacher)
    with tf.GradientTape() as tape:
        loss = patch_correspondence(s, t, 4)
    grad_s, grad_t = tape.gradient(loss, [s, t])
    assert grad_t is None or not np.any(grad_t.numpy())
    assert grad_s is not None and np.all(np.isfinite(grad_s.numpy())) and np.any(grad_s.numpy() != 0)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_identical_inputs_give_minus_one(rng, k):
    tokens = rng.normal(size=(B, NS, D)).astype("float32")
    np.testing.assert_allclose(float(patch_correspondence(tokens, tokens, k)), -1.0, atol=1e-6)


def test_graph_mode_with_unknown_sizes(rng):
    student, teacher = _tokens(rng)
    fn = tf.function(
        lambda s, t: patch_correspondence(s, t, 4),
        input_signature=[tf.TensorSpec((None, None, D)), tf.TensorSpec((None, None, D))],
    )
    expected, _, _ = brute_force(student, teacher, 4)
    np.testing.assert_allclose(float(fn(student, teacher)), expected, atol=1e-5)
    # K is capped at a token count only known at run time
    expected_all, _, _ = brute_force(student, teacher, 4 * NT)
    fn_all = tf.function(
        lambda s, t: patch_correspondence(s, t, 4 * NT),
        input_signature=[tf.TensorSpec((None, None, D)), tf.TensorSpec((None, None, D))],
    )
    np.testing.assert_allclose(float(fn_all(student, teacher)), expected_all, atol=1e-5)


def test_xla(rng):
    student, teacher = _tokens(rng)
    expected, _, _ = brute_force(student, teacher, 4)
    out = tf.function(lambda s, t: patch_correspondence(s, t, 4), jit_compile=True)(student, teacher)
    np.testing.assert_allclose(float(out), expected, atol=1e-5)


@pytest.mark.parametrize("num_matches", [0, -2])
def test_bad_num_matches_raises(rng, num_matches):
    student, teacher = _tokens(rng)
    with pytest.raises(ValueError, match=rf"num_matches must be >= 1; received num_matches={num_matches}"):
        patch_correspondence(student, teacher, num_matches)


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match=r"`student` must have shape \(batch, tokens, dim\); received student.shape"):
        patch_correspondence(np.zeros((B, D), "float32"), np.zeros((B, NT, D), "float32"), 2)
    with pytest.raises(ValueError, match=r"same dim.*student.shape=\(3, 9, 5\) and teacher.shape=\(3, 16, 4\)"):
        patch_correspondence(np.zeros((B, NS, D), "float32"), np.zeros((B, NT, 4), "float32"), 2)
    with pytest.raises(ValueError, match=r"same batch size"):
        patch_correspondence(np.zeros((B, NS, D), "float32"), np.zeros((2, NT, D), "float32"), 2)
