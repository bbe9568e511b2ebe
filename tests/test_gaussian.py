"""Tests of `rbf_tf.GaussianRBF` and its two squared-distance paths.

Every numerical test compares against NumPy in float64. The promised agreement is
1e-5 relative in float32 and 1e-10 relative in float64, for the fast path against
the reference and for both against NumPy.
"""

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf
from rbf_tf import gaussian

DISTANCES = ("fast", "reference")
DTYPES = (tf.float32, tf.float64)
RTOL = {tf.float32: 1e-5, tf.float64: 1e-10}

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
distances = pytest.mark.parametrize("distance", DISTANCES)


def mnist_like(rng, batch_size, width=784):
    """[batch_size, width] float64 array in [0, 1], about a fifth of it nonzero."""
    ink = rng.uniform(size=(batch_size, width)) < 0.2
    return rng.uniform(0.0, 1.0, (batch_size, width)) * ink


def numpy_squared_distances(x, mu):
    """[B, n] and [n, m] arrays to [B, m] squared distances, in float64."""
    x = np.asarray(x, np.float64)
    mu = np.asarray(mu, np.float64)
    return np.stack([np.sum((x - center) ** 2, axis=1) for center in mu.T], axis=1)


def numpy_rbf(x, mu, sigma, w):
    """The layer's formula, w_i exp(-||x - mu_i||^2 / sigma_i^2), in float64."""
    sigma = np.asarray(sigma, np.float64)
    return np.asarray(w, np.float64) * np.exp(
        -numpy_squared_distances(x, mu) / sigma**2
    )


def make_data(kind, seed=0):
    """Returns (x [B, n], mu [n, m]) float64 arrays of one of three kinds.

    "mnist_normal": MNIST-like inputs, standard normal centers (the default
    initialisation). "mnist_samples": MNIST-like inputs and centers drawn from
    other MNIST-like samples (the data-driven initialisation). "small": standard
    normal inputs and centers of width 5.
    """
    rng = np.random.default_rng(seed)
    if kind == "mnist_normal":
        return mnist_like(rng, 64), rng.standard_normal((784, 50))
    if kind == "mnist_samples":
        return mnist_like(rng, 64), mnist_like(rng, 50).T
    return rng.standard_normal((11, 5)), rng.standard_normal((5, 7))


def typical_widths(x, mu, seed=0):
    """[m] widths about the typical input-to-center distance, jittered per unit.

    With such widths the exponent d^2 / sigma^2 is of order one, as it is after
    the data-driven initialisation; this is where the outputs carry information.
    """
    rng = np.random.default_rng(seed)
    typical = np.sqrt(np.mean(numpy_squared_distances(x, mu)))
    return typical * rng.uniform(0.8, 1.2, mu.shape[1])


def make_layer(x, mu, dtype, distance, sigma=None, w=None, seed=0):
    """A GaussianRBF on centers `mu` with typical widths and random weights."""
    rng = np.random.default_rng(seed)
    if sigma is None:
        sigma = typical_widths(x, mu, seed)
    if w is None:
        w = rng.uniform(0.5, 2.0, mu.shape[1])
    return rbf_tf.GaussianRBF(
        mu.shape[0],
        mu.shape[1],
        mu=mu,
        sigma=sigma,
        w=w,
        dtype=dtype,
        distance=distance,
    )


def cast(array, dtype):
    return np.asarray(array, dtype.as_numpy_dtype)


# Agreement of the two paths, with each other and with NumPy.

DATA_KINDS = ("mnist_normal", "mnist_samples", "small")


@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize(
    "function",
    [rbf_tf.squared_distances, rbf_tf.squared_distances_reference],
    ids=["fast", "reference"],
)
@dtypes
def test_squared_distances_match_numpy(kind, function, dtype):
    x, mu = make_data(kind)
    x, mu = cast(x, dtype), cast(mu, dtype)

    d2 = function(tf.constant(x), tf.constant(mu))

    assert d2.dtype == dtype
    assert d2.shape == (x.shape[0], mu.shape[1])
    np.testing.assert_allclose(
        d2.numpy(), numpy_squared_distances(x, mu), rtol=RTOL[dtype]
    )


@dtypes
def test_fast_squared_distance_to_own_center_is_small_and_not_negative(dtype):
    # Centers copied from the inputs, shifted far from the origin, make the
    # expansion ||x||^2 - 2 x.mu + ||mu||^2 cancel almost exactly.
    x, _ = make_data("mnist_samples")
    x = cast(x + 30.0, dtype)
    mu = x[:10].T

    d2 = rbf_tf.squared_distances(tf.constant(x[:10]), tf.constant(mu)).numpy()

    assert np.all(d2 >= 0.0)
    norm2 = np.sum(x[:10].astype(np.float64) ** 2, axis=1)
    eps = np.finfo(dtype.as_numpy_dtype).eps
    assert np.all(np.diag(d2) <= 64 * eps * norm2)


@pytest.mark.parametrize("sigma", [1e-20, 1e-3, 1.0, 10.0])
@distances
@dtypes
def test_outputs_lie_between_zero_and_the_weight(sigma, distance, dtype):
    # Inputs on the centers and far from the origin: the fast expansion then
    # cancels almost exactly and its rounding can make d^2 come out negative,
    # which must not give exp(-d^2 / sigma^2) > 1.
    x, _ = make_data("mnist_samples")
    x = cast(x[:32] + 30.0, dtype)
    layer = rbf_tf.GaussianRBF(
        784, 32, mu=x.T, sigma=sigma, w=2.0, distance=distance, dtype=dtype
    )

    y = layer(x).numpy()

    assert np.all(y >= 0.0)
    assert np.all(y <= 2.0)


@pytest.mark.parametrize("kind", DATA_KINDS)
@dtypes
def test_fast_and_reference_layers_agree(kind, dtype):
    x, mu = make_data(kind)
    fast = make_layer(x, mu, dtype, "fast")
    reference = make_layer(x, mu, dtype, "reference")

    y_fast = fast(cast(x, dtype)).numpy()
    y_reference = reference(cast(x, dtype)).numpy()

    np.testing.assert_allclose(y_fast, y_reference, rtol=RTOL[dtype])


@pytest.mark.parametrize("kind", DATA_KINDS)
@distances
@dtypes
def test_outputs_match_numpy_formula(kind, distance, dtype):
    x, mu = make_data(kind)
    layer = make_layer(x, mu, dtype, distance)
    mu, sigma, w = (v.numpy() for v in (layer.mu, layer.sigma, layer.w))

    y = layer(cast(x, dtype))

    assert y.dtype == dtype
    np.testing.assert_allclose(
        y.numpy(), numpy_rbf(cast(x, dtype), mu, sigma, w), rtol=RTOL[dtype]
    )


@distances
@dtypes
def test_sample_that_is_a_center_gets_its_weight(distance, dtype):
    x, _ = make_data("mnist_samples")
    mu = x[:20].T
    layer = make_layer(x, mu, dtype, distance)

    y = layer(cast(x[:20], dtype)).numpy()

    np.testing.assert_allclose(np.diag(y), layer.w.numpy(), rtol=RTOL[dtype])


@distances
@dtypes
def test_eager_function_and_concrete_function_agree(distance, dtype):
    x, mu = make_data("small")
    layer = make_layer(x, mu, dtype, distance)
    x = tf.constant(cast(x, dtype))

    tf.config.run_functions_eagerly(True)
    try:
        eager = layer(x).numpy()
    finally:
        tf.config.run_functions_eagerly(False)
    compiled = tf.function(lambda t: layer(t) * 1.0)(x).numpy()
    concrete = layer.forward.get_concrete_function()(x).numpy()
    called = layer(x).numpy()

    expected = numpy_rbf(x.numpy(), mu, layer.sigma.numpy(), layer.w.numpy())
    for y in (eager, compiled, concrete, called):
        np.testing.assert_allclose(y, expected, rtol=RTOL[dtype])


# Gradients, float64, against central differences.


def numerical_gradient(loss, variable, delta=1e-6):
    """d loss() / d variable by central differences, shaped like `variable`."""
    start = variable.numpy()
    gradient = np.zeros(start.size)
    for i in range(start.size):
        step = np.zeros(start.size)
        step[i] = delta
        step = step.reshape(start.shape)
        variable.assign(start + step)
        above = loss().numpy()
        variable.assign(start - step)
        below = loss().numpy()
        gradient[i] = (above - below) / (2 * delta)
    variable.assign(start)
    return gradient.reshape(start.shape)


def gradient_problem(distance):
    """A float64 layer with some negative widths, its input and a scalar loss.

    The loss is a fixed random projection of the outputs, so its gradient is
    J^T c for the Jacobian J of the layer: every entry of J takes part.
    """
    x, mu = make_data("small", seed=3)
    sigma = typical_widths(x, mu) * np.array([1, -1, 1, 1, -1, 1, 1])
    layer = make_layer(x, mu, tf.float64, distance, sigma=sigma)
    projection = np.random.default_rng(4).standard_normal((x.shape[0], 7))
    x = tf.Variable(x)

    def loss():
        return tf.reduce_sum(projection * layer(x))

    return layer, x, loss


@pytest.mark.parametrize("name", ["x", "mu", "sigma", "w"])
@distances
def test_gradient_matches_numerical(name, distance):
    layer, x, loss = gradient_problem(distance)
    variable = x if name == "x" else getattr(layer, name)

    with tf.GradientTape() as tape:
        value = loss()
    theoretical = tape.gradient(value, variable).numpy()
    numerical = numerical_gradient(loss, variable)

    np.testing.assert_allclose(theoretical, numerical, rtol=1e-6, atol=1e-9)
    assert np.max(np.abs(theoretical)) > 1e-3


@distances
def test_gradients_inside_tf_function_match_eager_tape(distance):
    layer, x, loss = gradient_problem(distance)
    variables = [x, layer.mu, layer.sigma, layer.w]

    def gradients():
        with tf.GradientTape() as tape:
            value = loss()
        return tape.gradient(value, variables)

    eager = gradients()
    compiled = tf.function(gradients)()

    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


# Variables and tracing.


@dtypes
def test_variables_have_formula_names_shapes_and_dtype(dtype):
    layer = rbf_tf.GaussianRBF(input_dim=6, units=4, dtype=dtype)

    for variable, shape, name in (
        (layer.mu, [6, 4], "mu"),
        (layer.sigma, [4], "sigma"),
        (layer.w, [4], "w"),
    ):
        assert variable.shape.as_list() == shape
        assert variable.dtype == dtype
        assert variable.name.split("/")[-1] == f"{name}:0"
        assert variable.trainable


def test_trainable_variables_are_mu_sigma_and_w():
    layer = rbf_tf.GaussianRBF(input_dim=6, units=4)

    names = sorted(v.name.split("/")[-1] for v in layer.trainable_variables)

    assert names == ["mu:0", "sigma:0", "w:0"]


@dtypes
def test_forward_traces_with_a_free_batch_dimension(dtype):
    layer = rbf_tf.GaussianRBF(input_dim=6, units=4, dtype=dtype)

    concrete = layer.forward.get_concrete_function()

    (spec,), _ = concrete.structured_input_signature
    assert spec.shape.as_list() == [None, 6]
    assert spec.dtype == dtype
    assert concrete.structured_outputs.shape.as_list() == [None, 4]
    for batch_size in (1, 7):
        assert concrete(tf.zeros([batch_size, 6], dtype)).shape == (batch_size, 4)


def test_initial_values_are_used_and_scalars_broadcast():
    mu = np.arange(6.0).reshape(3, 2)

    layer = rbf_tf.GaussianRBF(3, 2, mu=mu, sigma=2.5, w=[0.5, -1.0])

    np.testing.assert_array_equal(layer.mu.numpy(), mu)
    np.testing.assert_array_equal(layer.sigma.numpy(), [2.5, 2.5])
    np.testing.assert_array_equal(layer.w.numpy(), [0.5, -1.0])


def test_default_initialisation_is_seeded():
    first = rbf_tf.GaussianRBF(5, 3, seed=7)
    again = rbf_tf.GaussianRBF(5, 3, seed=7)
    other = rbf_tf.GaussianRBF(5, 3, seed=8)

    np.testing.assert_array_equal(first.mu.numpy(), again.mu.numpy())
    assert not np.allclose(first.mu.numpy(), other.mu.numpy())
    np.testing.assert_allclose(first.sigma.numpy(), np.sqrt(5.0), rtol=1e-7)
    np.testing.assert_array_equal(first.w.numpy(), 1.0)


# Edge numerics.

EDGE_WIDTHS = (1e-20, 0.0, -1.0)
EDGE_INPUTS = ("far", "zeros", "on_center")


def edge_input(kind, mu):
    """[3, n] inputs: 1e4 from every center, all zero, or on the centers."""
    n = mu.shape[0]
    if kind == "far":
        return np.full((3, n), 1e4 / np.sqrt(n))
    if kind == "zeros":
        return np.zeros((3, n))
    return mu[:, :3].T.copy()


@pytest.mark.parametrize("kind", EDGE_INPUTS)
@distances
@dtypes
def test_outputs_and_gradients_stay_finite(kind, distance, dtype):
    # One unit per edge width: tiny, zero and negative.
    mu = np.random.default_rng(0).standard_normal((5, 3))
    layer = rbf_tf.GaussianRBF(
        5, 3, mu=mu, sigma=EDGE_WIDTHS, distance=distance, dtype=dtype
    )
    x = tf.constant(cast(edge_input(kind, mu), dtype))
    if kind == "far":
        distance_to_centers = np.sqrt(numpy_squared_distances(x.numpy(), mu))
        assert np.all(distance_to_centers > 0.99e4)

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x))
    gradients = tape.gradient(loss, [x, layer.mu, layer.sigma, layer.w])

    assert np.all(np.isfinite(layer(x).numpy()))
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy()))


@dtypes
def test_reference_path_gives_the_weight_on_a_center_at_edge_widths(dtype):
    # The fast path cannot promise this for widths below about sqrt(eps) * ||x||:
    # its rounding error in d^2 is then comparable to sigma^2.
    mu = np.random.default_rng(0).standard_normal((5, 3))
    layer = rbf_tf.GaussianRBF(
        5,
        3,
        mu=mu,
        sigma=EDGE_WIDTHS,
        w=[0.5, 1.0, 2.0],
        distance="reference",
        dtype=dtype,
    )

    y = layer(cast(mu.T, dtype)).numpy()

    np.testing.assert_array_equal(np.diag(y), [0.5, 1.0, 2.0])


@distances
@dtypes
def test_far_inputs_on_wide_layer_stay_finite(distance, dtype):
    layer = rbf_tf.GaussianRBF(
        784, 4, sigma=[1e-20, 0.0, -1.0, 1e3], dtype=dtype, distance=distance
    )
    x = tf.constant(np.full((2, 784), 1e4, dtype.as_numpy_dtype))

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    gradients = tape.gradient(y, [x, *layer.trainable_variables])

    assert np.all(np.isfinite(y.numpy()))
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy()))


@distances
@dtypes
def test_sign_of_sigma_does_not_matter(distance, dtype):
    x, mu = make_data("small")
    sigma = typical_widths(x, mu)
    positive = make_layer(x, mu, dtype, distance, sigma=sigma)
    mixed = make_layer(x, mu, dtype, distance, sigma=sigma * [1, -1, 1, -1, 1, -1, -1])
    negative = make_layer(x, mu, dtype, distance, sigma=-sigma)

    y = positive(cast(x, dtype)).numpy()

    np.testing.assert_array_equal(mixed(cast(x, dtype)).numpy(), y)
    np.testing.assert_array_equal(negative(cast(x, dtype)).numpy(), y)


def test_zero_width_is_floored_as_the_docstring_says():
    # The docstring promises max(sigma^2, 1e-12) as the variance.
    doc = " ".join(rbf_tf.GaussianRBF.__doc__.split())
    assert "width of zero is kept from dividing by zero" in doc
    assert "max(sigma_i^2, MIN_VARIANCE) = 1e-12" in doc
    assert gaussian.MIN_VARIANCE == 1e-12
    # Centers at the origin and inputs 1e-6 from them: d^2 = 1e-12 exactly.
    x = np.zeros((1, 3))
    x[0, 0] = 1e-6

    def output(sigma):
        layer = rbf_tf.GaussianRBF(
            3, 1, mu=np.zeros((3, 1)), sigma=sigma, dtype=tf.float64
        )
        return layer(x).numpy()

    np.testing.assert_allclose(output(0.0), np.exp(-1.0), rtol=1e-10)
    np.testing.assert_array_equal(output(1e-9), output(0.0))
    np.testing.assert_array_equal(output(-1e-9), output(0.0))
    np.testing.assert_allclose(output(1e-5), np.exp(-1e-2), rtol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 10_000])
@distances
@dtypes
def test_batch_of_one_and_of_ten_thousand(batch_size, distance, dtype):
    rng = np.random.default_rng(batch_size)
    x = rng.standard_normal((batch_size, 8))
    mu = rng.standard_normal((8, 4))
    layer = make_layer(x, mu, dtype, distance)

    y = layer(cast(x, dtype))

    assert y.shape == (batch_size, 4)
    np.testing.assert_allclose(
        y.numpy(),
        numpy_rbf(cast(x, dtype), mu, layer.sigma.numpy(), layer.w.numpy()),
        rtol=RTOL[dtype],
    )


# Errors.


@pytest.mark.parametrize("layer_class", [rbf_tf.GaussianRBF, rbf_tf.Dense])
@pytest.mark.parametrize(
    "shape, received",
    [
        ((3,), r"\(3,\) \(rank 1\)"),
        ((2, 3, 1), r"\(2, 3, 1\) \(rank 3\)"),
        ((2, 4), r"\(2, 4\)"),
    ],
    ids=["rank_1", "rank_3", "wrong_width"],
)
def test_wrong_input_shape_is_a_value_error(layer_class, shape, received):
    # Both layers share the check (rbf_tf.base.Layer); Dense is covered here too.
    layer = layer_class(3, 2)

    with pytest.raises(
        ValueError, match=r"shape \[batch_size, 3\], got shape " + received
    ):
        layer(np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    "layer_dtype, input_dtype",
    [(tf.float32, np.float64), (tf.float64, np.float32)],
    ids=["float64_into_float32", "float32_into_float64"],
)
def test_other_float_dtype_is_a_type_error_not_a_cast(layer_dtype, input_dtype):
    layer = rbf_tf.GaussianRBF(3, 2, dtype=layer_dtype)
    x = np.zeros((2, 3), input_dtype)
    expected = f"dtype {layer_dtype.name}, got {tf.as_dtype(input_dtype).name}"

    with pytest.raises(TypeError, match=expected):
        layer(x)
    with pytest.raises(TypeError, match=expected):
        layer(tf.constant(x))


@pytest.mark.parametrize(
    "x, received",
    [
        (np.zeros((2, 3), np.int32), "int32"),
        (tf.zeros((2, 3), tf.int64), "int64"),
        (np.zeros((2, 3), bool), "bool"),
        (tf.zeros((2, 3), tf.bool), "bool"),
        (np.full((2, 3), "a"), "string"),
        (tf.fill([2, 3], "a"), "string"),
        ([[True, False, True]], "bool"),
        ([["a", "b", "c"]], "str"),
    ],
    ids=[
        "numpy_int",
        "tensor_int",
        "numpy_bool",
        "tensor_bool",
        "numpy_str",
        "tensor_str",
        "list_bool",
        "list_str",
    ],
)
def test_non_float_input_is_a_type_error(x, received):
    layer = rbf_tf.GaussianRBF(3, 2)

    with pytest.raises(TypeError, match=f"float32, got .*{received}"):
        layer(x)


def test_nested_list_of_numbers_is_converted():
    layer = rbf_tf.GaussianRBF(3, 2, dtype=tf.float64)

    y = layer([[1, 2, 3], [0.5, 0.25, 0.125]])

    assert y.dtype == tf.float64
    np.testing.assert_array_equal(
        y.numpy(), layer(np.array([[1, 2, 3], [0.5, 0.25, 0.125]])).numpy()
    )


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("mu", np.zeros((2, 3)), r"mu must have shape \[3, 2\], got \[2, 3\]"),
        ("mu", np.zeros(6), r"mu must have shape \[3, 2\], got \[6\]"),
        ("sigma", [1.0, 2.0, 3.0], r"sigma must have shape \[2\], got \[3\]"),
        ("sigma", np.ones((2, 1)), r"sigma must have shape \[2\], got \[2, 1\]"),
        ("w", [[1.0, 2.0]], r"w must have shape \[2\], got \[1, 2\]"),
        ("sigma", [1.0, np.nan], "sigma must be finite"),
        ("w", np.inf, "w must be finite"),
    ],
)
def test_bad_initial_value_is_a_value_error(argument, value, message):
    with pytest.raises(ValueError, match=message):
        rbf_tf.GaussianRBF(3, 2, **{argument: value})


def test_non_numeric_initial_value_is_a_type_error():
    with pytest.raises(TypeError, match=r"mu must be numeric with shape \[3, 2\], got"):
        rbf_tf.GaussianRBF(3, 2, mu=[["a", "b"]] * 3)


@pytest.mark.parametrize("distance", ["Fast", "broadcast", None])
def test_unknown_distance_is_a_value_error(distance):
    with pytest.raises(ValueError, match=r"distance must be one of .*, got"):
        rbf_tf.GaussianRBF(3, 2, distance=distance)


@pytest.mark.parametrize(
    "dtype, received",
    [
        (tf.float16, "float16"),
        (tf.int32, "int32"),
        ("complex", "'complex'"),
        (None, "None"),
    ],
)
def test_bad_dtype_is_a_type_error(dtype, received):
    with pytest.raises(
        TypeError, match=f"dtype must be tf.float32 or tf.float64, got {received}"
    ):
        rbf_tf.GaussianRBF(3, 2, dtype=dtype)


@pytest.mark.parametrize("argument", ["input_dim", "units"])
@pytest.mark.parametrize("value", [0, -3])
def test_sizes_below_one_are_a_value_error(argument, value):
    sizes = {"input_dim": 3, "units": 2, argument: value}

    with pytest.raises(
        ValueError, match=f"{argument} must be a positive int, got {value}"
    ):
        rbf_tf.GaussianRBF(**sizes)


@pytest.mark.parametrize("value", [2.0, True, "2"])
def test_non_integer_units_are_a_type_error(value):
    with pytest.raises(TypeError, match="units must be a positive int, got"):
        rbf_tf.GaussianRBF(3, value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_numerics_rejects_nan_and_inf(bad):
    layer = rbf_tf.GaussianRBF(3, 2, check_numerics=True)
    x = np.zeros((2, 3), np.float32)
    x[1, 2] = bad

    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        layer(x)


def test_without_check_numerics_nan_propagates_unchecked():
    checked = rbf_tf.GaussianRBF(3, 2, check_numerics=True)
    unchecked = rbf_tf.GaussianRBF(3, 2)
    x = np.zeros((2, 3), np.float32)
    x[1, 2] = np.nan

    y = unchecked(x).numpy()

    assert np.all(np.isnan(y[1])) and np.all(np.isfinite(y[0]))

    def op_types(layer):
        graph = layer.forward.get_concrete_function().graph
        return {op.type for op in graph.get_operations()}

    assert not any("CheckNumerics" in t for t in op_types(unchecked))
    assert any("CheckNumerics" in t for t in op_types(checked))
