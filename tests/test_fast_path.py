"""Tests of the fast Gaussian path, `gaussian_rbf`, and its hand-written gradient.

The fast path is checked against the broadcast reference, `gaussian_rbf_reference`
(differentiated automatically), against NumPy, and against central differences
of a NumPy formula. Gradients are compared in three modes: eager, inside
`tf.function`, and inside `tf.function(jit_compile=True)` (XLA).
"""

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf
from rbf_tf.gaussian import (
    MIN_VARIANCE,
    gaussian_rbf,
    gaussian_rbf_reference,
)

DTYPES = (tf.float32, tf.float64)
RTOL = {tf.float32: 1e-5, tf.float64: 1e-10}
MODES = ("eager", "function", "xla")
NAMES = ("x", "mu", "sigma", "w")

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
modes = pytest.mark.parametrize("mode", MODES)


def numpy_rbf(x, mu, sigma, w):
    """w_i exp(-||x - mu_i||^2 / max(sigma_i^2, MIN_VARIANCE)) in float64."""
    x, mu, sigma, w = (np.asarray(a, np.float64) for a in (x, mu, sigma, w))
    d2 = np.sum((x[:, :, None] - mu[None, :, :]) ** 2, axis=1)  # [B, m]
    return w * np.exp(-d2 / np.maximum(sigma**2, MIN_VARIANCE))


def problem(kind="small", seed=0):
    """Returns float64 arrays (x [B, n], mu [n, m], sigma [m], w [m], c [B, m]).

    The widths are about the typical input-to-center distance, so every
    exponent is of order one; some are negative. `c` projects the outputs to
    the scalar loss sum(c * y), whose gradient involves every Jacobian entry.
    """
    rng = np.random.default_rng(seed)
    if kind == "mnist_like":
        x = rng.uniform(0.0, 1.0, (32, 784)) * (rng.uniform(size=(32, 784)) < 0.2)
        mu = rng.standard_normal((784, 20))
    else:
        x = rng.standard_normal((9, 5))
        mu = rng.standard_normal((5, 6))
    d2 = np.sum((x[:, :, None] - mu[None, :, :]) ** 2, axis=1)
    sigma = np.sqrt(np.mean(d2)) * rng.uniform(0.8, 1.2, mu.shape[1])
    sigma[::3] *= -1.0
    w = rng.uniform(0.5, 2.0, mu.shape[1]) * rng.choice([-1.0, 1.0], mu.shape[1])
    c = rng.standard_normal((x.shape[0], mu.shape[1]))
    return x, mu, sigma, w, c


def gradients(function, arrays, c, mode, dtype=tf.float64):
    """Returns (y, [dL/dx, dL/dmu, dL/dsigma, dL/dw]) as NumPy, L = sum(c * y)."""
    tensors = [tf.constant(np.asarray(a, dtype.as_numpy_dtype)) for a in arrays]
    c = tf.constant(np.asarray(c, dtype.as_numpy_dtype))

    def run(x, mu, sigma, w):
        with tf.GradientTape() as tape:
            tape.watch([x, mu, sigma, w])
            y = function(x, mu, sigma, w)
            loss = tf.reduce_sum(c * y)
        return y, tape.gradient(loss, [x, mu, sigma, w])

    if mode == "function":
        run = tf.function(run)
    elif mode == "xla":
        run = tf.function(run, jit_compile=True)
    y, grads = run(*tensors)
    return y.numpy(), [g.numpy() for g in grads]


def numerical_gradients(arrays, c, delta=1e-6):
    """Central differences of sum(c * numpy_rbf(...)) for each of the 4 arrays."""
    arrays = [np.array(a, np.float64) for a in arrays]
    result = []
    for index, array in enumerate(arrays):
        gradient = np.zeros(array.size)
        for i in range(array.size):
            values = []
            for sign in (1.0, -1.0):
                moved = [a.copy() for a in arrays]
                moved[index].reshape(-1)[i] += sign * delta
                values.append(np.sum(c * numpy_rbf(*moved)))
            gradient[i] = (values[0] - values[1]) / (2 * delta)
        result.append(gradient.reshape(array.shape))
    return result


# Outputs.


@pytest.mark.parametrize("kind", ["small", "mnist_like"])
@dtypes
def test_outputs_match_reference_and_numpy(kind, dtype):
    x, mu, sigma, w, _ = problem(kind)
    args = [tf.constant(np.asarray(a, dtype.as_numpy_dtype)) for a in (x, mu, sigma, w)]

    fast = gaussian_rbf(*args)
    reference = gaussian_rbf_reference(*args)

    assert fast.dtype == dtype
    assert fast.shape == (x.shape[0], mu.shape[1])
    np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=RTOL[dtype])
    expected = numpy_rbf(*(a.numpy() for a in args))
    np.testing.assert_allclose(fast.numpy(), expected, rtol=RTOL[dtype])


@dtypes
def test_layer_fast_path_is_gaussian_rbf(dtype):
    x, mu, sigma, w, _ = problem()
    layer = rbf_tf.GaussianRBF(5, 6, mu=mu, sigma=sigma, w=w, dtype=dtype)
    x = tf.constant(np.asarray(x, dtype.as_numpy_dtype))

    expected = gaussian_rbf(x, layer.mu, layer.sigma, layer.w)

    np.testing.assert_array_equal(layer(x).numpy(), expected.numpy())


# Gradients in float64.


@modes
def test_gradients_match_numerical_differences(mode):
    x, mu, sigma, w, c = problem(seed=1)

    _, theoretical = gradients(gaussian_rbf, (x, mu, sigma, w), c, mode)
    numerical = numerical_gradients((x, mu, sigma, w), c)

    for name, a, b in zip(NAMES, theoretical, numerical, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=name)
        assert np.max(np.abs(a)) > 1e-3, name


@pytest.mark.parametrize("kind", ["small", "mnist_like"])
@modes
def test_gradients_match_reference(kind, mode):
    x, mu, sigma, w, c = problem(kind, seed=2)

    y_fast, fast = gradients(gaussian_rbf, (x, mu, sigma, w), c, mode)
    y_reference, reference = gradients(
        gaussian_rbf_reference, (x, mu, sigma, w), c, "eager"
    )

    np.testing.assert_allclose(y_fast, y_reference, rtol=1e-10)
    for name, a, b in zip(NAMES, fast, reference, strict=True):
        scale = np.max(np.abs(b))
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * scale, err_msg=name)


@modes
def test_float32_gradients_match_reference(mode):
    x, mu, sigma, w, c = problem("mnist_like", seed=3)

    _, fast = gradients(gaussian_rbf, (x, mu, sigma, w), c, mode, tf.float32)
    _, exact = gradients(gaussian_rbf_reference, (x, mu, sigma, w), c, "eager")

    for name, a, b in zip(NAMES, fast, exact, strict=True):
        np.testing.assert_allclose(
            a, b, rtol=1e-3, atol=1e-4 * np.max(np.abs(b)), err_msg=name
        )


def test_second_derivatives_match_reference():
    # d/dv of ||dL/dv||^2 differentiates through the hand-written gradient.
    x, mu, sigma, w, c = problem(seed=4)

    def curvature(function, mode):
        tensors = [tf.constant(a) for a in (x, mu, sigma, w)]

        def run(*tensors):
            with tf.GradientTape() as outer:
                outer.watch(tensors)
                with tf.GradientTape() as inner:
                    inner.watch(tensors)
                    loss = tf.reduce_sum(c * function(*tensors))
                first = inner.gradient(loss, tensors)
                norm = tf.add_n([tf.reduce_sum(tf.square(g)) for g in first])
            return outer.gradient(norm, tensors)

        run = tf.function(run) if mode == "function" else run
        return [g.numpy() for g in run(*tensors)]

    expected = curvature(gaussian_rbf_reference, "eager")
    for mode in ("eager", "function"):
        for name, a, b in zip(
            NAMES, curvature(gaussian_rbf, mode), expected, strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12, err_msg=name)


def test_sign_of_sigma_flips_only_its_own_gradient():
    x, mu, sigma, w, c = problem(seed=5)

    y, plus = gradients(gaussian_rbf, (x, mu, np.abs(sigma), w), c, "function")
    y_minus, minus = gradients(gaussian_rbf, (x, mu, -np.abs(sigma), w), c, "function")

    np.testing.assert_array_equal(y_minus, y)
    for name, a, b in zip(NAMES, plus, minus, strict=True):
        expected = -a if name == "sigma" else a
        np.testing.assert_array_equal(b, expected, err_msg=name)


# Edges: widths at and below the floor, inputs far away or at zero.

EDGE_WIDTHS = np.array([0.0, 1e-20, -1e-20, -1.0, 1e-6, 3.0])
EDGE_INPUTS = ("far", "zeros", "on_centers")


def edge_problem(kind, dtype):
    rng = np.random.default_rng(6)
    mu = rng.standard_normal((7, EDGE_WIDTHS.size))
    if kind == "far":
        x = 1e4 + rng.standard_normal((4, 7))
    elif kind == "zeros":
        x = np.zeros((4, 7))
    else:
        x = mu[:, :4].T.copy()
    w = rng.uniform(0.5, 2.0, EDGE_WIDTHS.size)
    c = rng.standard_normal((4, EDGE_WIDTHS.size))
    arrays = [np.asarray(a, dtype.as_numpy_dtype) for a in (x, mu, EDGE_WIDTHS, w)]
    return arrays, c


@pytest.mark.parametrize("kind", EDGE_INPUTS)
@modes
@dtypes
def test_outputs_and_gradients_are_finite_at_the_edges(kind, mode, dtype):
    arrays, c = edge_problem(kind, dtype)

    y, grads = gradients(gaussian_rbf, arrays, c, mode, dtype)

    assert np.all(np.isfinite(y))
    assert np.all((y == 0.0) | (np.sign(y) == np.sign(arrays[3])))
    for name, gradient in zip(NAMES, grads, strict=True):
        assert np.all(np.isfinite(gradient)), name


@modes
@dtypes
def test_far_inputs_give_zero_outputs_and_gradients(mode, dtype):
    arrays, c = edge_problem("far", dtype)

    y, grads = gradients(gaussian_rbf, arrays, c, mode, dtype)

    np.testing.assert_array_equal(y, 0.0)
    for name, gradient in zip(NAMES, grads, strict=True):
        np.testing.assert_array_equal(gradient, 0.0, err_msg=name)


@modes
@dtypes
def test_widths_below_the_floor_have_zero_gradient(mode, dtype):
    # Inputs at 1e-6 from centers at the origin: d^2 = 1e-12, y = w exp(-1).
    x = np.zeros((1, 3))
    x[0, 0] = 1e-6
    mu = np.zeros((3, 4))
    sigma = np.array([0.0, 1e-20, -1e-9, 1e-5])
    w = np.ones(4)
    arrays = [np.asarray(a, dtype.as_numpy_dtype) for a in (x, mu, sigma, w)]

    y, (_, _, dsigma, _) = gradients(gaussian_rbf, arrays, np.ones((1, 4)), mode, dtype)

    rtol = RTOL[dtype] if dtype == tf.float64 else 1e-3
    np.testing.assert_allclose(y[0, :3], np.exp(-1.0), rtol=rtol)
    np.testing.assert_array_equal(dsigma[:3], 0.0)
    assert dsigma[3] != 0.0


@dtypes
def test_zero_inputs_on_zero_centers_match_reference_exactly(dtype):
    arrays = [np.zeros((3, 4)), np.zeros((4, 5)), EDGE_WIDTHS[:5], np.arange(1.0, 6.0)]
    arrays = [np.asarray(a, dtype.as_numpy_dtype) for a in arrays]
    c = np.random.default_rng(7).standard_normal((3, 5))

    y, fast = gradients(gaussian_rbf, arrays, c, "function", dtype)
    y_ref, reference = gradients(gaussian_rbf_reference, arrays, c, "function", dtype)

    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(y, np.broadcast_to(arrays[3], y.shape))
    for name, a, b in zip(NAMES, fast, reference, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


# Cost: the structure that makes the fast path cheap.


def traced_ops(function):
    """Operations of the graph of `function`'s outputs and all four gradients."""
    specs = [
        tf.TensorSpec([None, 5], tf.float32),
        tf.TensorSpec([5, 6], tf.float32),
        tf.TensorSpec([6], tf.float32),
        tf.TensorSpec([6], tf.float32),
    ]

    @tf.function(input_signature=specs)
    def run(x, mu, sigma, w):
        with tf.GradientTape() as tape:
            tape.watch([x, mu, sigma, w])
            y = function(x, mu, sigma, w)
        return y, tape.gradient(y, [x, mu, sigma, w])

    return run.get_concrete_function().graph.get_operations()


def test_fast_path_uses_three_matrix_products_and_no_rank_three_tensor():
    ops = traced_ops(gaussian_rbf)

    products = [op for op in ops if "MatMul" in op.type or "Einsum" in op.type]
    assert len(products) == 3  # x mu forward; x^T q and q mu^T backward.
    ranks = {t.shape.rank for op in ops for t in op.outputs if t.dtype == tf.float32}
    assert max(ranks) == 2


def test_reference_path_builds_a_rank_three_tensor():
    # The contrast that shows the check above can fail.
    ops = traced_ops(gaussian_rbf_reference)

    ranks = {t.shape.rank for op in ops for t in op.outputs if t.dtype == tf.float32}
    assert 3 in ranks


# Inside a model: the classifier's step under XLA.


def test_classifier_gradients_agree_between_paths_under_xla():
    rng = np.random.default_rng(8)
    x = rng.uniform(0.0, 1.0, (16, 12))
    labels = rng.integers(0, 3, 16)
    mu = rng.uniform(0.0, 1.0, (12, 8))

    def classifier_gradients(distance):
        hidden = rbf_tf.GaussianRBF(
            12, 8, mu=mu, sigma=1.5, distance=distance, dtype=tf.float64
        )
        model = rbf_tf.Classifier(hidden, num_classes=3)

        @tf.function(jit_compile=True)
        def run(images, targets):
            with tf.GradientTape() as tape:
                logits = model(images)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
                )
            return tape.gradient(loss, model.trainable_variables)

        variables = [v.name for v in model.trainable_variables]
        gradients = run(tf.constant(x), tf.constant(labels))
        return dict(zip(variables, gradients, strict=True))

    fast = classifier_gradients("fast")
    reference = classifier_gradients("reference")

    assert sorted(fast) == sorted(reference)
    for name, gradient in fast.items():
        np.testing.assert_allclose(
            gradient.numpy(),
            reference[name].numpy(),
            rtol=1e-9,
            atol=1e-12,
            err_msg=name,
        )
