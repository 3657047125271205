"""devnag's training loop in JAX: the peer a performance-minded user would pick instead of
ganfast (issue 12). One jitted function runs whole epochs: `lax.scan` over the 20 D steps and
the 20 G steps of an epoch, and over the epochs; `jax.vmap` over a population.

The same work as the fused engine's devnag epoch: G 1-5-5-1 tanh, D 4-10-10-1 sigmoid on the
four moments of a batch of 500, BCE (logs clamped at -100, as torch's), SGD with momentum 0.9
and lr 1e-3 on both nets, uniform noise and N(4, 1.25) real data, float32. JAX draws with its
own RNG (threefry), so the numbers differ from ganfast's; the arithmetic per step does not.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

BATCH, D_STEPS, G_STEPS = 500, 20, 20
LR, MOMENTUM = 1e-3, 0.9
G_WIDTHS, D_WIDTHS = (1, 5, 5, 1), (4, 10, 10, 1)


def init_mlp(key, widths):
    """nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / jnp.sqrt(fan_in)
        params.append((jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
                       jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)))
    return params


def mlp(params, x, act, out_act):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        x = act(x) if i + 1 < len(params) else out_act(x)
    return x


def moments(x):
    mean = jnp.mean(x)
    diffs = x - mean
    std = jnp.sqrt(jnp.mean(diffs ** 2))
    z = diffs / std
    return jnp.stack([mean, std, jnp.mean(z ** 3), jnp.mean(z ** 4) - 3.0])


def bce(p, y):
    return -jnp.mean(y * jnp.maximum(jnp.log(p), -100.0) + (1 - y) * jnp.maximum(jnp.log1p(-p), -100.0))


def generator(gp, noise):
    return mlp(gp, noise, jnp.tanh, lambda v: v)


def discriminator(dp, x):
    return mlp(dp, moments(x)[None, :], jax.nn.sigmoid, jax.nn.sigmoid)


def d_loss(dp, gp, real, noise):
    fake = generator(gp, noise)
    return bce(discriminator(dp, real), 1.0) + bce(discriminator(dp, fake), 0.0)


def g_loss(gp, dp, noise):
    return bce(discriminator(dp, generator(gp, noise)), 1.0)


def sgd(params, buf, grads):
    """torch.optim.SGD with momentum (the first step's buffer is the gradient: mu * 0 + g)."""
    buf = jax.tree_util.tree_map(lambda b, g: MOMENTUM * b + g, buf, grads)
    params = jax.tree_util.tree_map(lambda p, b: p - LR * b, params, buf)
    return params, buf


def epoch(carry, key):
    gp, dp, gbuf, dbuf = carry
    kd, kg = jax.random.split(key)

    def d_step(c, k):
        dp, dbuf = c
        k1, k2 = jax.random.split(k)
        real = 4.0 + 1.25 * jax.random.normal(k1, (BATCH, 1), jnp.float32)
        noise = jax.random.uniform(k2, (BATCH, 1), jnp.float32)
        dp, dbuf = sgd(dp, dbuf, jax.grad(d_loss)(dp, gp, real, noise))
        return (dp, dbuf), None

    (dp, dbuf), _ = lax.scan(d_step, (dp, dbuf), jax.random.split(kd, D_STEPS))

    def g_step(c, k):
        gp, gbuf = c
        noise = jax.random.uniform(k, (BATCH, 1), jnp.float32)
        gp, gbuf = sgd(gp, gbuf, jax.grad(g_loss)(gp, dp, noise))
        return (gp, gbuf), None

    (gp, gbuf), _ = lax.scan(g_step, (gp, gbuf), jax.random.split(kg, G_STEPS))
    return (gp, dp, gbuf, dbuf), None


def init_state(seed: int):
    kg, kd = jax.random.split(jax.random.PRNGKey(seed))
    gp, dp = init_mlp(kg, G_WIDTHS), init_mlp(kd, D_WIDTHS)
    zeros = lambda t: jax.tree_util.tree_map(jnp.zeros_like, t)
    return gp, dp, zeros(gp), zeros(dp)


def _train(state, keys):
    state, _ = lax.scan(epoch, state, keys)
    return state


#: One GAN: train(state, keys) runs len(keys) epochs.
train = jax.jit(_train)
#: A population: states and keys with a leading member axis.
train_population = jax.jit(jax.vmap(_train))


def run(state, epochs: int, seed: int = 0):
    """`epochs` epochs of one GAN; blocks until done; returns the new state."""
    keys = jax.random.split(jax.random.PRNGKey(seed), epochs)
    return jax.block_until_ready(train(state, keys))


def init_population(population: int, seed: int = 0):
    return jax.vmap(init_state)(jnp.arange(population) + seed)


def run_population(states, epochs: int, seed: int = 0):
    population = jax.tree_util.tree_leaves(states)[0].shape[0]
    keys = jax.vmap(lambda k: jax.random.split(k, epochs))(jax.random.split(jax.random.PRNGKey(seed), population))
    return jax.block_until_ready(train_population(states, keys))
