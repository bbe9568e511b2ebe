"""Tests of `rbf_tf.Dense`, the hand-written baseline layer."""

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf

RTOL = {tf.float32: 1e-5, tf.float64: 1e-12}

dtypes = pytest.mark.parametrize(
    "dtype", [tf.float32, tf.float64], ids=lambda d: d.name
)

NUMPY_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "linear": lambda z: z,
}


def layer_with_bias(activation, dtype, seed=0):
    """A Dense(5, 4) layer whose bias is nonzero, and a [9, 5] input."""
    layer = rbf_tf.Dense(5, 4, activation=activation, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    layer.bias.assign(rng.uniform(-1.0, 1.0, 4))
    x = rng.standard_normal((9, 5)).astype(dtype.as_numpy_dtype)
    return layer, x


@pytest.mark.parametrize("activation", sorted(NUMPY_ACTIVATIONS))
@dtypes
def test_output_matches_numpy(activation, dtype):
    layer, x = layer_with_bias(activation, dtype)
    z = x.astype(np.float64) @ layer.kernel.numpy() + layer.bias.numpy()

    y = layer(x)

    assert y.dtype == dtype
    assert y.shape == (9, 4)
    expected = NUMPY_ACTIVATIONS[activation](z)
    np.testing.assert_allclose(y.numpy(), expected, rtol=RTOL[dtype], atol=1e-7)


def test_none_activation_is_linear():
    linear, x = layer_with_bias("linear", tf.float64)
    none, _ = layer_with_bias(None, tf.float64)

    np.testing.assert_array_equal(none(x).numpy(), linear(x).numpy())
    assert none.activation_name == "linear"


def test_callable_activation_is_applied():
    layer, x = layer_with_bias(tf.nn.softplus, tf.float64)
    z = x @ layer.kernel.numpy() + layer.bias.numpy()

    y = layer(x).numpy()

    np.testing.assert_allclose(y, np.log1p(np.exp(z)), rtol=1e-12)
    assert layer.activation_name == "softplus"


def test_eager_and_compiled_agree():
    layer, x = layer_with_bias("tanh", tf.float64)

    tf.config.run_functions_eagerly(True)
    try:
        eager = layer(x).numpy()
    finally:
        tf.config.run_functions_eagerly(False)
    compiled = tf.function(lambda t: layer(t))(tf.constant(x)).numpy()

    np.testing.assert_allclose(compiled, eager, rtol=1e-12)


@pytest.mark.parametrize("name", ["x", "kernel", "bias"])
def test_gradient_matches_numerical(name):
    layer, x = layer_with_bias("tanh", tf.float64)
    x = tf.Variable(x)
    projection = np.random.default_rng(1).standard_normal((9, 4))
    variable = x if name == "x" else getattr(layer, name)

    def loss():
        return tf.reduce_sum(projection * layer(x))

    with tf.GradientTape() as tape:
        value = loss()
    theoretical = tape.gradient(value, variable).numpy()
    start, delta = variable.numpy(), 1e-6
    numerical = np.zeros(start.size)
    for i in range(start.size):
        step = np.zeros(start.size)
        step[i] = delta
        variable.assign(start + step.reshape(start.shape))
        above = loss().numpy()
        variable.assign(start - step.reshape(start.shape))
        numerical[i] = (above - loss().numpy()) / (2 * delta)
    variable.assign(start)

    np.testing.assert_allclose(
        theoretical, numerical.reshape(start.shape), rtol=1e-6, atol=1e-9
    )


@dtypes
def test_variables_shapes_dtypes_and_names(dtype):
    layer = rbf_tf.Dense(input_dim=7, units=3, dtype=dtype)

    assert layer.kernel.shape == (7, 3) and layer.bias.shape == (3,)
    assert layer.kernel.dtype == dtype and layer.bias.dtype == dtype
    names = sorted(v.name.split("/")[-1] for v in layer.trainable_variables)
    assert names == ["bias:0", "kernel:0"]
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


def test_parameter_count_is_n_m_plus_m():
    layer = rbf_tf.Dense(input_dim=784, units=100)

    assert rbf_tf.count_parameters(layer) == 784 * 100 + 100


def test_kernel_is_seeded():
    first = rbf_tf.Dense(20, 10, seed=5).kernel.numpy()
    again = rbf_tf.Dense(20, 10, seed=5).kernel.numpy()
    other = rbf_tf.Dense(20, 10, seed=6).kernel.numpy()

    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_kernel_scales_follow_glorot_and_he():
    n, m = 400, 300
    glorot = rbf_tf.Dense(n, m, activation="tanh").kernel.numpy()
    he = rbf_tf.Dense(n, m, activation="relu").kernel.numpy()

    limit = np.sqrt(6.0 / (n + m))
    assert np.max(np.abs(glorot)) <= limit
    np.testing.assert_allclose(np.std(glorot), limit / np.sqrt(3.0), rtol=0.02)
    np.testing.assert_allclose(np.std(he), np.sqrt(2.0 / n), rtol=0.02)


@dtypes
def test_forward_traces_with_a_free_batch_dimension(dtype):
    layer = rbf_tf.Dense(6, 4, dtype=dtype)

    concrete = layer.forward.get_concrete_function()

    (spec,), _ = concrete.structured_input_signature
    assert spec.shape.as_list() == [None, 6] and spec.dtype == dtype
    assert concrete.structured_outputs.shape.as_list() == [None, 4]
    for batch_size in (1, 10_000):
        assert layer(tf.zeros([batch_size, 6], dtype)).shape == (batch_size, 4)


@pytest.mark.parametrize(
    "x, received",
    [
        (np.zeros((2, 3)), "float64"),
        (np.zeros((2, 3), np.int64), "int64"),
        (np.zeros((2, 3), bool), "bool"),
        ([["a", "b", "c"]], "str"),
    ],
    ids=["float64", "int", "bool", "str"],
)
def test_wrong_input_dtype_is_a_type_error(x, received):
    layer = rbf_tf.Dense(3, 2)

    with pytest.raises(TypeError, match=f"float32, got .*{received}"):
        layer(x)


def test_unknown_activation_name_is_a_value_error():
    with pytest.raises(ValueError, match=r"activation must be one of .*got 'gelu'"):
        rbf_tf.Dense(3, 2, activation="gelu")


def test_non_callable_activation_is_a_type_error():
    with pytest.raises(TypeError, match="activation must be one of .*got 3"):
        rbf_tf.Dense(3, 2, activation=3)


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"units": 0}, ValueError, "units must be a positive int, got 0"),
        ({"input_dim": -1}, ValueError, "input_dim must be a positive int, got -1"),
        ({"units": 2.5}, TypeError, "units must be a positive int, got 2.5"),
        ({"dtype": tf.int32}, TypeError, "dtype must be tf.float32 or tf.float64"),
    ],
)
def test_bad_constructor_arguments(arguments, error, message):
    arguments = {"input_dim": 3, "units": 2, **arguments}

    with pytest.raises(error, match=message):
        rbf_tf.Dense(**arguments)


def test_check_numerics_rejects_nan():
    layer = rbf_tf.Dense(3, 2, check_numerics=True)

    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        layer(np.array([[0.0, np.nan, 1.0]], np.float32))
