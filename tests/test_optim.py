"""Tests for seqrec.optim against a numpy transcription of GRU4Rec's IndexedAdagradM."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqrec import optim

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-7


class NumpyIndexedAdagradM:
  """Step-by-step numpy transcription of the official IndexedAdagradM, in float32."""

  def __init__(self, params, lr, momentum, eps=EPS):
    self.params = {k: np.array(v, np.float32) for k, v in params.items()}
    self.lr, self.momentum, self.eps = np.float32(lr), np.float32(momentum), np.float32(eps)
    self.acc = {k: np.zeros_like(v) for k, v in self.params.items()}
    self.mom = {k: np.zeros_like(v) for k, v in self.params.items()} if momentum > 0 else None

  def sparse_step(self, name, indices, values):
    """Sparse branch: `indices` [M] may repeat; padding must already be removed."""
    p, acc = self.params[name], self.acc[name]
    rows = np.unique(indices)  # what torch's coalesce() keeps
    grad = np.zeros((len(rows),) + p.shape[1:], np.float32)
    np.add.at(grad, np.searchsorted(rows, indices), values.astype(np.float32))
    accs = acc[rows] + grad**2
    acc[rows] = accs
    scaled = np.sqrt(accs + self.eps) * (-1 / self.lr)
    if self.mom is not None:
      moma = self.mom[name][rows] * self.momentum + grad / scaled
      self.mom[name][rows] = moma
      p[rows] += moma
    else:
      p[rows] += grad / scaled

  def dense_step(self, name, grad):
    p, acc = self.params[name], self.acc[name]
    acc += grad.astype(np.float32) ** 2
    denom = np.sqrt(acc + self.eps)
    if self.mom is not None:
      mom = self.mom[name]
      mom *= self.momentum
      mom += -self.lr * grad / denom
      p += mom
    else:
      p -= self.lr * grad / denom


def _random_lookups(rng, num_rows, num_lookups, pool=None, pad_frac=0.2):
  """[M] indices with many duplicates and a share of sentinel (N) padding entries."""
  pool = np.arange(num_rows) if pool is None else np.asarray(pool)
  idx = rng.choice(pool, size=num_lookups).astype(np.int32)
  idx[rng.random(num_lookups) < pad_frac] = num_rows
  return idx


def _assert_close(actual, expected):
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('momentum', [0.0, 0.3])
@pytest.mark.parametrize('row_shape', [(5,), (), (1,)], ids=['matrix', 'bias_1d', 'bias_n1'])
def test_row_sparse_update_matches_indexed_adagradm(momentum, row_shape):
  rng = np.random.default_rng(0)
  num_rows, num_lookups, lr = 13, 24, 0.05
  table0 = rng.normal(size=(num_rows, *row_shape)).astype(np.float32)
  ref = NumpyIndexedAdagradM({'t': table0}, lr, momentum)
  table = jnp.asarray(table0)
  state = optim.init_row_sparse(table, with_momentum=momentum > 0)
  for _ in range(6):
    idx = _random_lookups(rng, num_rows, num_lookups)
    grads = rng.normal(size=(num_lookups, *row_shape)).astype(np.float32)
    grads[rng.random(num_lookups) < 0.15] = 0.0  # looked up, zero gradient: momentum still moves
    keep = idx < num_rows
    ref.sparse_step('t', idx[keep], grads[keep])
    table, state = optim.row_sparse_update(
      table, state, jnp.asarray(idx), jnp.asarray(grads), learning_rate=lr, momentum=momentum
    )
    _assert_close(table, ref.params['t'])
    _assert_close(state.acc, ref.acc['t'])
    if momentum > 0:
      _assert_close(state.mom, ref.mom['t'])
    else:
      assert state.mom.shape == (0, *row_shape)


def test_rows_not_looked_up_stay_bit_identical():
  rng = np.random.default_rng(1)
  num_rows, dim, num_lookups = 20, 4, 16
  first, later = np.arange(0, 6), np.arange(6, 14)  # rows 14..19 are never looked up
  table = jnp.asarray(rng.normal(size=(num_rows, dim)).astype(np.float32))
  table_init = np.asarray(table).copy()
  state = optim.init_row_sparse(table)
  kwargs = dict(learning_rate=0.1, momentum=0.9)

  idx = _random_lookups(rng, num_rows, num_lookups, pool=first)
  grads = rng.normal(size=(num_lookups, dim)).astype(np.float32)
  table, state = optim.row_sparse_update(
    table, state, jnp.asarray(idx), jnp.asarray(grads), **kwargs
  )
  after_first = [np.asarray(x)[first].copy() for x in (table, state.acc, state.mom)]
  assert np.all(after_first[2][np.unique(idx[idx < num_rows])] != 0)  # momentum is live there

  for _ in range(4):
    idx = _random_lookups(rng, num_rows, num_lookups, pool=later)
    grads = rng.normal(size=(num_lookups, dim)).astype(np.float32)
    table, state = optim.row_sparse_update(
      table, state, jnp.asarray(idx), jnp.asarray(grads), **kwargs
    )

  # Stale momentum must not keep moving rows that were looked up earlier but not since.
  for before, now in zip(after_first, (table, state.acc, state.mom), strict=True):
    np.testing.assert_array_equal(np.asarray(now)[first], before)
  np.testing.assert_array_equal(np.asarray(table)[14:], table_init[14:])
  np.testing.assert_array_equal(np.asarray(state.acc)[14:], 0.0)
  np.testing.assert_array_equal(np.asarray(state.mom)[14:], 0.0)


def test_padding_entries_are_ignored_whatever_their_gradient():
  rng = np.random.default_rng(2)
  num_rows, dim = 9, 3
  table = jnp.asarray(rng.normal(size=(num_rows, dim)).astype(np.float32))
  state = optim.init_row_sparse(table)
  real_idx = np.array([1, 4, 4, 7], np.int32)
  real_grads = rng.normal(size=(4, dim)).astype(np.float32)
  padded_idx = np.array([num_rows, 1, 4, -1, 4, num_rows + 5, 7, num_rows], np.int32)
  padded_grads = 1e3 * rng.normal(size=(8, dim)).astype(np.float32)
  padded_grads[[1, 2, 4, 6]] = real_grads
  kwargs = dict(learning_rate=0.05, momentum=0.5)
  want = optim.row_sparse_update(table, state, jnp.asarray(real_idx), real_grads, **kwargs)
  got = optim.row_sparse_update(table, state, jnp.asarray(padded_idx), padded_grads, **kwargs)
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_all_padding_is_a_no_op():
  table = jnp.arange(12.0).reshape(4, 3)
  state = optim.init_row_sparse(table)
  idx = jnp.full((5,), 4, jnp.int32)
  new_table, new_state = optim.row_sparse_update(
    table, state, idx, jnp.ones((5, 3)), learning_rate=0.1, momentum=0.9
  )
  np.testing.assert_array_equal(np.asarray(new_table), np.asarray(table))
  np.testing.assert_array_equal(np.asarray(new_state.acc), 0.0)
  np.testing.assert_array_equal(np.asarray(new_state.mom), 0.0)


def test_gather_rows_gradients_reproduce_the_dense_gradient_rows():
  """Row gradients from gather_rows summed per row equal the dense gradient (torch's coalesce)."""
  rng = np.random.default_rng(3)
  num_rows, dim = 11, 4
  table = jnp.asarray(rng.normal(size=(num_rows, dim)).astype(np.float32))
  hidden = jnp.asarray(rng.normal(size=(6, dim)).astype(np.float32))
  idx = jnp.asarray([2, 5, 2, 11, 9, 5], jnp.int32)  # one padding entry
  weight = (idx < num_rows).astype(jnp.float32)[:, None]  # [M, 1]

  def loss_of_rows(rows):  # rows: [M, D]
    return jnp.sum(weight * jnp.tanh(rows * hidden))

  row_grads = jax.grad(loss_of_rows)(optim.gather_rows(table, idx))  # [M, D]
  dense_grad = jax.grad(lambda t: loss_of_rows(optim.gather_rows(t, idx)))(table)  # [N, D]

  lr, momentum = 0.05, 0.2
  ref = NumpyIndexedAdagradM({'t': np.asarray(table)}, lr, momentum)
  rows = np.unique(np.asarray(idx)[np.asarray(idx) < num_rows])
  ref.sparse_step('t', rows, np.asarray(dense_grad)[rows])
  new_table, new_state = optim.row_sparse_update(
    table, optim.init_row_sparse(table), idx, row_grads, learning_rate=lr, momentum=momentum
  )
  _assert_close(new_table, ref.params['t'])
  _assert_close(new_state.mom, ref.mom['t'])


@pytest.mark.parametrize('momentum', [0.0, 0.4])
def test_update_is_jittable_with_donation_and_traced_hyperparameters(momentum):
  rng = np.random.default_rng(4)
  num_rows, dim, num_lookups = 17, 3, 10
  table0 = rng.normal(size=(num_rows, dim)).astype(np.float32)
  steps = [
    (_random_lookups(rng, num_rows, num_lookups), rng.normal(size=(num_lookups, dim)))
    for _ in range(3)
  ]
  steps = [(jnp.asarray(i), jnp.asarray(g, jnp.float32)) for i, g in steps]

  eager_table = jnp.asarray(table0)
  eager_state = optim.init_row_sparse(eager_table, with_momentum=momentum > 0)
  for idx, grads in steps:
    eager_table, eager_state = optim.row_sparse_update(
      eager_table, eager_state, idx, grads, learning_rate=0.05, momentum=momentum
    )

  def step(table, state, idx, grads, lr, mom):
    return optim.row_sparse_update(table, state, idx, grads, learning_rate=lr, momentum=mom)

  jitted = jax.jit(step, donate_argnums=(0, 1))
  table = jnp.asarray(table0)
  state = optim.init_row_sparse(table, with_momentum=momentum > 0)
  for idx, grads in steps:
    table, state = jitted(table, state, idx, grads, jnp.float32(0.05), jnp.float32(momentum))
  _assert_close(table, np.asarray(eager_table))
  _assert_close(state.acc, np.asarray(eager_state.acc))
  _assert_close(state.mom, np.asarray(eager_state.mom))


def _walk_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from _walk_eqns(sub)


def test_update_makes_no_full_table_temporaries():
  """Only the final scatters may produce arrays with the table's row count."""
  num_rows, dim, num_lookups = 1009, 7, 12
  table = jnp.zeros((num_rows, dim))
  state = optim.init_row_sparse(table)
  closed = jax.make_jaxpr(
    lambda t, s, i, g: optim.row_sparse_update(t, s, i, g, learning_rate=0.1, momentum=0.5)
  )(table, state, jnp.zeros((num_lookups,), jnp.int32), jnp.zeros((num_lookups, dim)))
  full_size = [
    eqn.primitive.name
    for eqn in _walk_eqns(closed.jaxpr)
    for var in eqn.outvars
    if any(d >= num_rows for d in getattr(var.aval, 'shape', ()))
  ]
  assert full_size, 'expected the scatters back into the table and state'
  assert set(full_size) <= {'scatter', 'scatter-add', 'pjit', 'jit'}, full_size
  assert full_size.count('scatter') + full_size.count('scatter-add') == 3


def test_momentum_without_buffer_is_rejected():
  table = jnp.zeros((4, 2))
  state = optim.init_row_sparse(table, with_momentum=False)
  with pytest.raises(ValueError, match='with_momentum'):
    optim.row_sparse_update(
      table, state, jnp.zeros((3,), jnp.int32), jnp.zeros((3, 2)), learning_rate=0.1, momentum=0.5
    )


def test_optax_scale_by_rss_equals_official_formula():
  """optax puts eps inside the root, `g * rsqrt(acc + eps)`, and gives 0 where acc == 0."""
  g = np.array([[0.3, -2.0, 0.0], [1e-3, 0.0, 5.0]], np.float32)
  tx = optax.scale_by_rss(initial_accumulator_value=0.0, eps=EPS)
  out, _ = tx.update(jnp.asarray(g), tx.init(jnp.zeros_like(g)))
  _assert_close(out, g / np.sqrt(g**2 + np.float32(EPS)))


@pytest.mark.parametrize('momentum', [0.0, 0.25])
def test_dense_adagrad_momentum_matches_indexed_adagradm(momentum):
  rng = np.random.default_rng(5)
  lr = 0.07
  params0 = {
    'w': rng.normal(size=(6, 9)).astype(np.float32),
    'b': rng.normal(size=(9,)).astype(np.float32),
  }
  ref = NumpyIndexedAdagradM(params0, lr, momentum)
  tx = optim.dense_adagrad_momentum(lr, momentum)
  params = jax.tree.map(jnp.asarray, params0)
  opt_state = tx.init(params)

  @jax.jit
  def apply(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  for step in range(6):
    grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params0.items()}
    if step < 2:
      grads['b'][:3] = 0.0  # acc stays exactly 0 in these entries for two steps
    for k, g in grads.items():
      ref.dense_step(k, g)
    params, opt_state = apply(params, opt_state, jax.tree.map(jnp.asarray, grads))
    for k in params0:
      _assert_close(params[k], ref.params[k])


def test_dense_momentum_zero_has_no_trace_state():
  tx = optim.dense_adagrad_momentum(0.1, 0.0)
  state = tx.init({'w': jnp.zeros((3,))})
  assert not any(isinstance(s, optax.TraceState) for s in state)


def test_sparse_adagradm_updates_only_named_tables():
  rng = np.random.default_rng(6)
  tables = {
    'Wy': jnp.asarray(rng.normal(size=(8, 4)).astype(np.float32)),
    'By': jnp.zeros((8, 1)),
    'E': jnp.asarray(rng.normal(size=(8, 3)).astype(np.float32)),
  }
  opt = optim.SparseAdagradM(learning_rate=0.05, momentum=0.3)
  states = opt.init(tables)
  idx = jnp.asarray([3, 1, 3, 8, 0], jnp.int32)
  row_grads = {
    'Wy': jnp.asarray(rng.normal(size=(5, 4)).astype(np.float32)),
    'By': jnp.asarray(rng.normal(size=(5, 1)).astype(np.float32)),
  }
  new_tables, new_states = jax.jit(opt.update)(tables, states, {'Wy': idx, 'By': idx}, row_grads)
  for name in ('Wy', 'By'):
    want_table, want_state = optim.row_sparse_update(
      tables[name], states[name], idx, row_grads[name], learning_rate=0.05, momentum=0.3
    )
    _assert_close(new_tables[name], np.asarray(want_table))
    _assert_close(new_states[name].mom, np.asarray(want_state.mom))
  np.testing.assert_array_equal(np.asarray(new_tables['E']), np.asarray(tables['E']))
  for got, want in zip(jax.tree.leaves(new_states['E']), jax.tree.leaves(states['E']), strict=True):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
