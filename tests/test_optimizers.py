"""Tests of the `rbf_tf.SGD` and `rbf_tf.Adam` optimisers against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

import rbf_tf

RTOL = {tf.float32: 1e-5, tf.float64: 1e-12}
ATOL = {tf.float32: 1e-6, tf.float64: 1e-15}
STEPS = 5

dtypes = pytest.mark.parametrize(
    "dtype", [tf.float32, tf.float64], ids=lambda d: d.name
)


class Quadratic:
    """loss(x) = 0.5 * sum(a * (x - c)^2) over a [3, 2] variable and a [4] one.

    Its gradient a * (x - c) depends on x, so an update that goes wrong once
    changes every later gradient.
    """

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.start = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
        self.a = [rng.uniform(0.5, 2.0, (3, 2)), rng.uniform(0.5, 2.0, 4)]
        self.c = [rng.standard_normal((3, 2)), rng.standard_normal(4)]

    def variables(self, dtype):
        return [tf.Variable(x.astype(dtype.as_numpy_dtype)) for x in self.start]

    def losses(self, variables):
        """One scalar per variable, each in its variable's dtype."""
        return [
            0.5 * tf.reduce_sum(tf.cast(a, v.dtype) * (v - tf.cast(c, v.dtype)) ** 2)
            for v, a, c in zip(variables, self.a, self.c, strict=True)
        ]

    def numpy_gradients(self, xs):
        return [a * (x - c) for x, a, c in zip(xs, self.a, self.c, strict=True)]


def train(problem, optimizer, variables, steps):
    """Runs `steps` eager steps of `optimizer` on the problem's loss."""
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = problem.losses(variables)
        optimizer.apply(tape.gradient(loss, variables), variables)


def numpy_sgd(problem, learning_rate, momentum, nesterov, steps):
    xs = [x.copy() for x in problem.start]
    velocities = [np.zeros_like(x) for x in xs]
    for _ in range(steps):
        for x, v, g in zip(xs, velocities, problem.numpy_gradients(xs), strict=True):
            v *= momentum
            v += g
            x -= learning_rate * (g + momentum * v if nesterov else v)
    return xs


def numpy_adam(problem, learning_rate, beta1, beta2, epsilon, steps):
    xs = [x.copy() for x in problem.start]
    ms = [np.zeros_like(x) for x in xs]
    ss = [np.zeros_like(x) for x in xs]
    for t in range(1, steps + 1):
        for x, m, s, g in zip(xs, ms, ss, problem.numpy_gradients(xs), strict=True):
            m[...] = beta1 * m + (1 - beta1) * g
            s[...] = beta2 * s + (1 - beta2) * g**2
            scale = learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
            x -= scale * m / (np.sqrt(s) + epsilon)
    return xs


@pytest.mark.parametrize(
    "momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)]
)
@dtypes
def test_sgd_matches_numpy(momentum, nesterov, dtype):
    problem = Quadratic()
    variables = problem.variables(dtype)
    optimizer = rbf_tf.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)

    train(problem, optimizer, variables, STEPS)

    expected = numpy_sgd(problem, 0.1, momentum, nesterov, STEPS)
    for variable, x in zip(variables, expected, strict=True):
        assert variable.dtype == dtype
        np.testing.assert_allclose(
            variable.numpy(), x, rtol=RTOL[dtype], atol=ATOL[dtype]
        )


@pytest.mark.parametrize(
    "beta1, beta2, epsilon", [(0.9, 0.999, 1e-8), (0.5, 0.8, 1e-2)]
)
@dtypes
def test_adam_matches_numpy(beta1, beta2, epsilon, dtype):
    problem = Quadratic()
    variables = problem.variables(dtype)
    optimizer = rbf_tf.Adam(0.1, beta1=beta1, beta2=beta2, epsilon=epsilon)

    train(problem, optimizer, variables, STEPS)

    expected = numpy_adam(problem, 0.1, beta1, beta2, epsilon, STEPS)
    for variable, x in zip(variables, expected, strict=True):
        np.testing.assert_allclose(
            variable.numpy(), x, rtol=RTOL[dtype], atol=ATOL[dtype]
        )


def test_one_optimizer_updates_variables_of_both_dtypes():
    problem = Quadratic()
    variables = [
        tf.Variable(problem.start[0].astype(np.float32)),
        tf.Variable(problem.start[1]),
    ]
    optimizer = rbf_tf.Adam(0.1)

    train(problem, optimizer, variables, STEPS)

    expected = numpy_adam(problem, 0.1, 0.9, 0.999, 1e-8, STEPS)
    np.testing.assert_allclose(variables[0].numpy(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(variables[1].numpy(), expected[1], rtol=1e-12)


def test_step_counts_applies_and_slots_follow_variables():
    problem = Quadratic()
    variables = problem.variables(tf.float32)
    optimizer = rbf_tf.Adam(0.1)

    train(problem, optimizer, variables, 3)

    assert optimizer.step.numpy() == 3
    assert len(optimizer.slots) == 2
    for slots, variable in zip(optimizer.slots, variables, strict=True):
        assert [s.shape for s in slots] == [variable.shape] * 2
        assert all(not s.trainable for s in slots)


def test_none_gradient_leaves_its_variable_and_slots_alone():
    problem = Quadratic()
    variables = problem.variables(tf.float64)
    optimizer = rbf_tf.SGD(0.1)

    optimizer.apply([None, tf.ones(4, tf.float64)], variables)

    np.testing.assert_array_equal(variables[0].numpy(), problem.start[0])
    np.testing.assert_array_equal(optimizer.slots[0][0].numpy(), 0.0)
    np.testing.assert_allclose(variables[1].numpy(), problem.start[1] - 0.1)


def test_assigning_the_learning_rate_changes_later_steps():
    variable = tf.Variable([1.0], dtype=tf.float64)
    optimizer = rbf_tf.SGD(0.5, momentum=0.0)

    optimizer.apply([tf.constant([1.0], tf.float64)], [variable])
    optimizer.learning_rate.assign(0.25)
    optimizer.apply([tf.constant([1.0], tf.float64)], [variable])

    np.testing.assert_allclose(variable.numpy(), [1.0 - 0.5 - 0.25], rtol=1e-15)


@pytest.mark.parametrize("make", [rbf_tf.SGD, rbf_tf.Adam], ids=["sgd", "adam"])
def test_training_step_inside_tf_function_matches_eager(make):
    problem = Quadratic()
    eager_variables = problem.variables(tf.float64)
    compiled_variables = problem.variables(tf.float64)
    eager_optimizer = make(0.05)
    compiled_optimizer = make(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = problem.losses(compiled_variables)
        gradients = tape.gradient(loss, compiled_variables)
        compiled_optimizer.apply(gradients, compiled_variables)

    for _ in range(STEPS):
        step()
    train(problem, eager_optimizer, eager_variables, STEPS)

    assert compiled_optimizer.step.numpy() == STEPS
    for compiled, eager in zip(compiled_variables, eager_variables, strict=True):
        np.testing.assert_allclose(compiled.numpy(), eager.numpy(), rtol=1e-12)


@pytest.mark.parametrize("make", [rbf_tf.SGD, rbf_tf.Adam], ids=["sgd", "adam"])
def test_checkpoint_restores_state_and_continues_identically(make, tmp_path):
    problem = Quadratic()
    variables = problem.variables(tf.float32)
    optimizer = make(0.05)
    train(problem, optimizer, variables, 3)
    optimizer.learning_rate.assign(0.02)
    path = tf.train.Checkpoint(optimizer=optimizer, variables=variables).save(
        str(tmp_path / "ckpt")
    )
    train(problem, optimizer, variables, 2)

    fresh_variables = problem.variables(tf.float32)
    fresh = make(0.5)
    status = tf.train.Checkpoint(optimizer=fresh, variables=fresh_variables).restore(
        path
    )
    assert fresh.step.numpy() == 3
    assert fresh.learning_rate.numpy() == pytest.approx(0.02)
    fresh.build(fresh_variables)
    status.assert_consumed()
    train(problem, fresh, fresh_variables, 2)

    assert fresh.step.numpy() == optimizer.step.numpy() == 5
    for restored, original in zip(fresh_variables, variables, strict=True):
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
    for restored, original in zip(fresh.slots, optimizer.slots, strict=True):
        for a, b in zip(restored, original, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_applying_to_a_different_variable_list_is_an_error():
    problem = Quadratic()
    variables = problem.variables(tf.float32)
    optimizer = rbf_tf.Adam(0.1)
    train(problem, optimizer, variables, 1)

    with pytest.raises(ValueError, match="built for 2 variables .*different list of 1"):
        optimizer.apply([tf.ones(4)], variables[1:])
    with pytest.raises(ValueError, match="built for 2 variables .*different list of 2"):
        optimizer.apply([tf.ones(4), tf.ones((3, 2))], variables[::-1])


def test_gradient_count_must_match_variables():
    variables = Quadratic().variables(tf.float32)

    with pytest.raises(ValueError, match="got 1 gradients for 2 variables"):
        rbf_tf.SGD(0.1).apply([tf.ones((3, 2))], variables)


@pytest.mark.parametrize(
    "make, arguments, message",
    [
        (rbf_tf.SGD, {"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        (rbf_tf.Adam, {"learning_rate": -1.0}, "learning_rate must be positive"),
        (rbf_tf.SGD, {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        (rbf_tf.SGD, {"momentum": -0.1}, r"momentum must be in \[0, 1\), got -0.1"),
        (rbf_tf.Adam, {"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
        (rbf_tf.Adam, {"beta2": -0.5}, r"beta2 must be in \[0, 1\), got -0.5"),
        (rbf_tf.Adam, {"epsilon": -1e-8}, "epsilon must be non-negative, got -1e-08"),
    ],
)
def test_bad_hyperparameters_are_value_errors(make, arguments, message):
    with pytest.raises(ValueError, match=message):
        make(**arguments)


def test_make_optimizer_by_name():
    sgd = rbf_tf.make_optimizer("sgd", 0.3)
    adam = rbf_tf.make_optimizer("adam", 0.002)

    assert isinstance(sgd, rbf_tf.SGD) and sgd.momentum == 0.9
    assert isinstance(adam, rbf_tf.Adam)
    assert adam.learning_rate.numpy() == pytest.approx(0.002)

    with pytest.raises(ValueError, match=r"optimizer must be one of .*got 'rmsprop'"):
        rbf_tf.make_optimizer("rmsprop", 0.1)
