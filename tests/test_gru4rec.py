"""Tests for the GRU4Rec module and its session-parallel update against plain references."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqrec import losses
from seqrec import train_step as ts
from seqrec.data.session_parallel import build_schedule
from seqrec.models.gru4rec import GRU4Rec, ItemTable
from tests import reference_gru4rec as ref

MODES = ('constrained', 'separate', 'onehot')
TABLES = ('item_in', 'item_out', 'item_bias')
LOSS_PARAMS = {
  'xe': {'loss': 'cross-entropy', 'logq': 1.0, 'bpreg': 0.0, 'elu_param': 0.0},
  'bprmax': {'loss': 'bpr-max', 'logq': 0.0, 'bpreg': 1.0, 'elu_param': 0.5},
  # hgru4rec's: TOP1 on tanh-activated scores.
  'top1tanh': {'loss': 'top1', 'logq': 0.0, 'bpreg': 0.0, 'elu_param': 0.0, 'final_act': 'tanh'},
}


# -- Helpers -------------------------------------------------------------------------------------


def _model(mode, n_items, layers, *, seed=0, dropout_embed=0.0, dropout_hidden=0.0):
  """A GRU4Rec whose every parameter, biases included, is drawn from N(0, 0.5**2).

  Non-zero biases and one scale for all blocks make a misplaced bias or gate block show. The
  module is built abstractly (`nnx.eval_shape`), which keeps the tests free of initialiser
  compilations.
  """
  model = nnx.eval_shape(
    lambda: GRU4Rec(
      n_items,
      layers,
      embedding=6 if mode == 'separate' else 0,
      constrained_embedding=mode == 'constrained',
      dropout_p_embed=dropout_embed,
      dropout_p_hidden=dropout_hidden,
      rngs=nnx.Rngs(0),
    )
  )
  assert model.mode == mode
  rng = np.random.default_rng(seed)
  state = nnx.state(model, nnx.Param)
  pure = jax.tree.map(
    lambda v: jnp.asarray(rng.normal(0.0, 0.5, v.shape), jnp.float32), nnx.to_pure_dict(state)
  )
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(model, state)
  return model


def _params64(model):
  """All parameters of `model` as a nested dict of float64 numpy arrays."""
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  return jax.tree.map(lambda v: np.asarray(v, np.float64), pure)


def _flat(tree):
  """Nested dict -> {path string: numpy array}."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _snapshot(state):
  """(params, Adagrad accumulators, momenta) of a TrainState, each a flat {name: array} dict."""
  rss, _, trace = state.dense_opt
  params = {**nnx.to_pure_dict(state.tables), **nnx.to_pure_dict(state.dense)}
  acc = {**{k: s.acc for k, s in state.table_opt.items()}, **nnx.to_pure_dict(rss.sum_of_squares)}
  mom = {**{k: s.mom for k, s in state.table_opt.items()}, **nnx.to_pure_dict(trace.trace)}
  return _flat(params), _flat(acc), _flat(mom)


def _assert_dicts_close(actual, expected, rtol, atol, what):
  assert actual.keys() == expected.keys(), what
  for name in expected:
    np.testing.assert_allclose(
      actual[name], expected[name], rtol=rtol, atol=atol, err_msg=f'{what} {name}'
    )


def _step_config(loss, n_sample, momentum=0.3):
  return ts.StepConfig(
    **LOSS_PARAMS[loss], n_sample=n_sample, sample_alpha=0.75, learning_rate=0.1, momentum=momentum
  )


def _batch(inputs, targets, valid, reset):
  return {
    'inputs': jnp.asarray(inputs, jnp.int32),
    'targets': jnp.asarray(targets, jnp.int32),
    'valid': jnp.asarray(valid, bool),
    'reset': jnp.asarray(reset, bool),
  }


def _negatives(state, cfg, counts):
  """The shared negatives the next step of `state` draws, recomputed in numpy.

  The step key is `fold_in(rng, step)`, split into (negatives, dropout); the uniforms are mapped
  through the cdf of popularity**sample_alpha (last entry 1), as the official sample cache does.
  """
  if cfg.n_sample == 0:
    return np.zeros((0,), np.int64)
  key_neg, _ = jax.random.split(jax.random.fold_in(state.rng, state.step))
  u = np.asarray(jax.random.uniform(key_neg, (cfg.n_sample,), jnp.float32), np.float64)
  weights = np.asarray(counts, np.float64) ** cfg.sample_alpha
  cdf = np.cumsum(weights) / weights.sum()
  cdf[-1] = 1.0
  return np.minimum(np.searchsorted(cdf, u, side='right'), len(counts) - 1)


@functools.partial(jax.jit, static_argnames=('mode', 'cfg', 'batch_size'))
def _reference_grad(params, hidden, inputs, rows, cols, log_q, *, mode, cfg, batch_size):
  """Gradient of the official loss w.r.t. the full parameter tree, for the slots `rows`.

  Returns:
    (gradient tree, (loss summed over `rows`, new per-layer hidden states of every slot)).
  """

  def objective(params):
    out, new_hidden = ref.forward(jnp, params, mode, inputs, hidden)
    scores = ref.scores(params, out[rows], cols)  # [M, M + S]
    row_valid = jnp.ones((scores.shape[0],), bool)
    if cfg.loss == 'cross-entropy':
      total = losses.cross_entropy(scores, row_valid, col_log_q=log_q, logq=cfg.logq)
    elif cfg.loss == 'top1':
      total = losses.top1(jnp.tanh(scores), row_valid)  # final_act='tanh', written out
    else:
      total = losses.bpr_max(scores, row_valid, elu_param=cfg.elu_param, bpreg=cfg.bpreg)
    return total / batch_size, (total, new_hidden)

  return jax.grad(objective, has_aux=True)(params)


class DenseReference:
  """GRU4Rec training on full tables: `jax.grad` of the official loss, IndexedAdagradM in numpy.

  Only the valid slots enter the loss (the official shrunken batch); the loss is divided by the
  configured batch size. A table row moves when the step looked it up: the inputs (the input
  table), the targets and the negatives (`item_out`, `item_bias`).
  """

  def __init__(self, model, cfg, counts):
    self.mode = model.mode
    self.cfg = cfg
    self.params = _params64(model)
    self.opt = ref.IndexedAdagradM(_flat(self.params), cfg.learning_rate, cfg.momentum)
    self.log_pop = np.log(np.maximum(np.asarray(counts, np.float64), 1.0))

  def _looked_up(self, inputs, cols):
    rows = {'item_bias': cols, 'item_out': cols}
    if self.mode == 'constrained':
      rows['item_out'] = np.concatenate([inputs, cols])
    else:
      rows['item_in'] = inputs
    return {name: np.unique(r) for name, r in rows.items()}

  def step(self, hidden, inputs, targets, valid, negatives, batch_size):
    """One update. Returns (loss summed over the valid slots, new per-layer hidden states)."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    rows = np.flatnonzero(valid)
    cols = np.concatenate([targets[rows], negatives])  # [M + S]
    log_q = np.concatenate(
      [self.log_pop[targets[rows]], self.cfg.sample_alpha * self.log_pop[negatives]]
    )

    params32 = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), self.params)
    grads, (total, new_hidden) = _reference_grad(
      params32,
      hidden,
      inputs,
      rows,
      cols,
      log_q.astype(np.float32),
      mode=self.mode,
      cfg=self.cfg,
      batch_size=batch_size,
    )
    grads = jax.tree.map(lambda g: np.asarray(g, np.float64), grads)
    looked_up = self._looked_up(inputs[rows], cols)
    for name, table_rows in looked_up.items():
      untouched = np.setdiff1d(np.arange(grads[name].shape[0]), table_rows)
      assert not np.any(grads[name][untouched]), f'{name}: gradient outside the looked-up rows'

    def update(path, param, grad):
      name = jax.tree_util.keystr(path)
      if path[0].key in looked_up:
        return self.opt.sparse_step(name, param, looked_up[path[0].key], grad)
      return self.opt.dense_step(name, param, grad)

    self.params = jax.tree_util.tree_map_with_path(update, self.params, grads)
    return float(total), [np.asarray(h) for h in new_hidden]

  def assert_matches(self, state, rtol=2e-5, atol=2e-6):
    params, acc, mom = _snapshot(state)
    _assert_dicts_close(params, _flat(self.params), rtol, atol, 'param')
    _assert_dicts_close(acc, self.opt.acc, rtol, atol, 'acc')
    _assert_dicts_close(mom, self.opt.mom, rtol, atol, 'mom')


# -- 1. Forward pass -----------------------------------------------------------------------------


@pytest.mark.parametrize('layers', [(5,), (5, 4)], ids=['1layer', '2layers'])
@pytest.mark.parametrize('mode', MODES)
def test_forward_matches_numpy_reference(mode, layers):
  n_items, batch = 9, 3
  model = _model(mode, n_items, layers)
  params = _params64(model)
  rng = np.random.default_rng(1)
  ref_hidden = [rng.normal(size=(batch, u)) for u in layers]
  hidden = tuple(jnp.asarray(h, jnp.float32) for h in ref_hidden)
  cols = np.array([0, 3, 3, 8])  # a duplicate column on purpose
  for t in range(4):
    items = rng.integers(0, n_items, batch)
    if t == 2:  # slot 1 starts a new session
      hidden = tuple(h.at[1].set(0.0) for h in hidden)
      for h in ref_hidden:
        h[1] = 0.0
    out, hidden = model.encode(jnp.asarray(items), hidden)
    ref_out, ref_hidden = ref.forward(np, params, mode, items, ref_hidden)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    assert len(hidden) == len(layers)
    for h, ref_h in zip(hidden, ref_hidden, strict=True):
      np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
      model.score_all(out), ref.scores(params, ref_out, np.arange(n_items)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
      model.score_rows(out, *model.output_rows(jnp.asarray(cols))),
      ref.scores(params, ref_out, cols),
      rtol=1e-5,
      atol=1e-5,
    )


@pytest.mark.parametrize('mode', MODES)
def test_dropped_out_output_is_the_carried_state(mode):
  n_items, batch, layers, p_embed, p_hidden = 9, 6, (5, 4), 0.25, 0.5
  model = _model(mode, n_items, layers, dropout_embed=p_embed, dropout_hidden=p_hidden)
  params = _params64(model)
  rng = np.random.default_rng(2)
  items = rng.integers(0, n_items, batch)
  ref_hidden = [rng.normal(size=(batch, u)) for u in layers]
  key = jax.random.key(3)
  in_rows = model.input_rows(jnp.asarray(items))
  # Dropout sites: the embedding (in one-hot mode, the first layer's output), then every
  # GRUCell's output; site i draws its mask from the i-th of 1 + len(layers) split keys.
  first = 1 if mode == 'onehot' else 0
  sizes = [layers[0] if mode == 'onehot' else in_rows.shape[1]] + list(layers[first:])
  rates = [p_embed] + [p_hidden] * (len(layers) - first)
  keys = jax.random.split(key, 1 + len(layers))
  scales = [
    np.asarray(jax.random.bernoulli(keys[i], 1.0 - p, (batch, size))) / (1.0 - p)
    for i, (p, size) in enumerate(zip(rates, sizes, strict=True))
  ]
  out, hidden = model.step(in_rows, tuple(jnp.asarray(h, jnp.float32) for h in ref_hidden), key)
  ref_out, ref_hidden = ref.forward(np, params, mode, items, ref_hidden, scales)
  np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
  for h, ref_h in zip(hidden, ref_hidden, strict=True):
    np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-5)
    assert np.any(np.asarray(h) == 0.0)  # the carried state is the dropped-out output
  assert np.array_equal(out, hidden[-1])


# -- 2. Training steps vs a dense reference ------------------------------------------------------

N_ITEMS = 12
# Items 10 and 11 have count 0, so they are never drawn as negatives: after step 0 only the
# padding slot 3 holds them, and their rows (value, accumulator, momentum) must stay frozen.
# Every step has three valid slots, so the reference compiles once.
COUNTS = np.array([3, 9, 4, 1, 7, 2, 5, 6, 1, 8, 0, 0])
STEPS = (  # (inputs, targets, valid, reset)
  ([1, 2, 3, 10], [4, 5, 2, 11], [0, 1, 1, 1], [1, 1, 1, 1]),
  ([4, 5, 2, 10], [6, 4, 7, 11], [1, 1, 1, 0], [1, 0, 0, 0]),
  ([6, 3, 7, 10], [8, 9, 1, 11], [1, 1, 1, 0], [0, 1, 0, 0]),
)


@functools.cache
def _update_fn(mode, loss, n_sample):
  """The jitted one-step update for N_ITEMS items and one layer of 5, shared by the tests."""
  graphdef, _, _ = nnx.split(_model(mode, N_ITEMS, (5,)), ItemTable, nnx.Param)
  return jax.jit(ts.make_update_fn(graphdef, _step_config(loss, n_sample), COUNTS))


@pytest.mark.parametrize(
  'mode, loss',
  [
    ('constrained', 'xe'),
    ('constrained', 'bprmax'),
    ('separate', 'xe'),
    ('separate', 'bprmax'),
    ('onehot', 'xe'),
    ('onehot', 'top1tanh'),
  ],
)
def test_train_steps_match_dense_reference(mode, loss):
  cfg = _step_config(loss, n_sample=3)
  model = _model(mode, N_ITEMS, (5,))
  reference = DenseReference(model, cfg, COUNTS)
  batch_size = len(STEPS[0][0])
  state = ts.init_train_state(model, batch_size, cfg.momentum, jax.random.key(7))
  update = _update_fn(mode, loss, cfg.n_sample)
  ref_hidden = [np.asarray(h) for h in state.hidden]
  snapshots = []
  for inputs, targets, valid, reset in STEPS:
    negatives = _negatives(state, cfg, COUNTS)
    assert not np.isin(negatives, [10, 11]).any()
    ref_hidden = [np.where(np.asarray(reset, bool)[:, None], 0.0, h) for h in ref_hidden]
    ref_total, ref_hidden = reference.step(
      ref_hidden, inputs, targets, np.asarray(valid, bool), negatives, batch_size
    )
    state, stats = update(state, _batch(inputs, targets, valid, reset))
    reference.assert_matches(state)
    for h, ref_h in zip(state.hidden, ref_hidden, strict=True):
      np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats, [ref_total, sum(valid)], rtol=1e-5)
    snapshots.append(_snapshot(state))
  assert int(state.step) == len(STEPS)
  # The padding slot's rows are frozen although their momentum is not zero.
  for kind, first, last in zip(('param', 'acc', 'mom'), snapshots[0], snapshots[-1], strict=True):
    for name in TABLES:
      key = f"['{name}']"
      if key in first:
        assert np.array_equal(first[key][10:], last[key][10:]), (kind, name)
  assert np.all(snapshots[0][2]["['item_out']"][11] != 0.0)


# -- 3. Masking equals removal -------------------------------------------------------------------


@pytest.mark.parametrize(
  'mode, loss, n_sample',
  [
    ('constrained', 'xe', 3),
    ('separate', 'bprmax', 3),
    ('constrained', 'bprmax', 0),
  ],
)
def test_masked_slot_equals_removed_slot(mode, loss, n_sample):
  """Slot 1 is padding: the update equals the official batch without it (loss still / B)."""
  cfg = _step_config(loss, n_sample)
  model = _model(mode, N_ITEMS, (5,))
  reference = DenseReference(model, cfg, COUNTS)
  # The padding slot holds items that valid slots look up too, and a large stale hidden state.
  steps = (
    ([1, 4, 3, 5], [4, 3, 2, 6], [1, 0, 1, 1]),
    ([4, 2, 2, 6], [7, 5, 8, 1], [1, 0, 1, 1]),
  )
  keep = np.array([0, 2, 3])
  state = ts.init_train_state(model, 4, cfg.momentum, jax.random.key(11))
  hidden = np.random.default_rng(4).normal(size=(4, 5)).astype(np.float32)
  hidden[1] = 50.0
  state = dataclasses.replace(state, hidden=(jnp.asarray(hidden),))
  ref_hidden = [hidden[keep]]
  update = _update_fn(mode, loss, n_sample)
  for inputs, targets, valid in steps:
    negatives = _negatives(state, cfg, COUNTS)
    ref_total, ref_hidden = reference.step(
      ref_hidden,
      np.asarray(inputs)[keep],
      np.asarray(targets)[keep],
      np.ones(len(keep), bool),
      negatives,
      batch_size=4,
    )
    state, stats = update(state, _batch(inputs, targets, valid, [0, 0, 0, 0]))
    reference.assert_matches(state)
    np.testing.assert_allclose(state.hidden[0][keep], ref_hidden[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats, [ref_total, len(keep)], rtol=1e-5)


def test_negatives_are_drawn_without_a_loop():
  """The negative draw equals numpy's search, edge values included, with no `while` in its HLO."""
  counts = np.array([5, 1, 0, 9, 3, 3, 7], np.float64)
  cdf = ts.sampling_cdf(jnp.asarray(counts), 0.5)  # [N], last entry exactly 1
  cdf_np = np.asarray(cdf)
  rng_u = np.random.default_rng(0).uniform(size=200)
  u = np.concatenate([[0.0, 1.0, np.nextafter(1.0, 0.0)], cdf_np, rng_u]).astype(np.float32)
  got = jax.jit(ts.draw_from_cdf)(cdf, jnp.asarray(u))
  want = np.minimum(np.searchsorted(cdf_np, u, side='right'), len(counts) - 1)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == jnp.int32
  assert counts[np.asarray(got)].min() > 0  # zero-count items are never drawn
  hlo = jax.jit(ts.draw_from_cdf).lower(cdf, jnp.asarray(u)).as_text()
  assert 'while' not in hlo


def test_fully_masked_step_changes_nothing():
  """A step without any valid slot has no counterpart in the official run: it must be a no-op.

  `build_schedule` pads every epoch with such steps up to a multiple of `steps_per_call`; if they
  moved anything, the trained model would depend on `steps_per_call`.
  """
  cfg = _step_config('xe', n_sample=3)
  state = ts.init_train_state(
    _model('constrained', N_ITEMS, (5,)), 4, cfg.momentum, jax.random.key(7)
  )
  update = _update_fn('constrained', 'xe', cfg.n_sample)
  state, _ = update(state, _batch(*STEPS[0]))  # momentum is non-zero from here on
  before = _snapshot(state)
  state, stats = update(state, _batch([0] * 4, [0] * 4, [0] * 4, [0] * 4))
  assert np.array_equal(stats, [0.0, 0.0])
  for kind, a, b in zip(('param', 'acc', 'mom'), before, _snapshot(state), strict=True):
    for name in a:
      assert np.array_equal(a[name], b[name]), f'{kind} {name} moved in a fully masked step'


# -- 4. Scanned chunks, step by step, determinism ------------------------------------------------

SCHED_ITEMS, SCHED_BATCH, SCHED_LAYERS, STEPS_PER_CALL = 15, 3, (6,), 4
SCHED_CFG = _step_config('bprmax', n_sample=4)


@functools.cache
def _epoch():
  """A small session-parallel epoch (with one-event sessions and a padded tail) and its counts."""
  rng = np.random.default_rng(5)
  lengths = rng.integers(1, 7, size=14)
  items = rng.integers(0, SCHED_ITEMS, lengths.sum())
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  schedule = build_schedule(items, offsets, SCHED_BATCH, steps_multiple=STEPS_PER_CALL)
  assert not schedule.valid.all()
  return schedule, np.bincount(items, minlength=SCHED_ITEMS)


def _sched_model(seed):
  return _model(
    'constrained', SCHED_ITEMS, SCHED_LAYERS, seed=seed, dropout_embed=0.2, dropout_hidden=0.3
  )


def _fresh_state(seed):
  model = _sched_model(seed)
  return ts.init_train_state(model, SCHED_BATCH, SCHED_CFG.momentum, jax.random.key(seed))


@functools.cache
def _sched_fns(unroll):
  """(jitted train_chunk, jitted one-step update) for the small epoch."""
  graphdef, _, _ = nnx.split(_sched_model(0), ItemTable, nnx.Param)
  counts = _epoch()[1]
  chunk = ts.make_train_chunk(graphdef, SCHED_CFG, counts, STEPS_PER_CALL, unroll)
  return chunk, jax.jit(ts.make_update_fn(graphdef, SCHED_CFG, counts))


def _run_chunks(seed=0, unroll=1):
  schedule = _epoch()[0]
  chunk = _sched_fns(unroll)[0]
  state = _fresh_state(seed)
  arrays = {k: jnp.asarray(v) for k, v in schedule.arrays().items()}
  totals = np.zeros(2)
  for c in range(schedule.chunks(STEPS_PER_CALL)):
    state, stats = chunk(state, arrays, jnp.int32(c * STEPS_PER_CALL))
    totals += np.asarray(stats, np.float64)
  return state, totals


def _run_steps(seed=0):
  schedule = _epoch()[0]
  update = _sched_fns(1)[1]
  state = _fresh_state(seed)
  totals = np.zeros(2)
  for t in range(schedule.inputs.shape[0]):
    state, stats = update(state, {k: jnp.asarray(v[t]) for k, v in schedule.arrays().items()})
    totals += np.asarray(stats, np.float64)
  return state, totals


@pytest.mark.parametrize('unroll', [1, 4])
def test_scanned_chunks_equal_step_by_step(unroll):
  """Dropout and negatives included: the scan consumes the per-step keys exactly as single steps."""
  scanned, scanned_totals = _run_chunks(unroll=unroll)
  stepped, stepped_totals = _run_steps()
  schedule = _epoch()[0]
  assert int(scanned.step) == int(stepped.step) == schedule.inputs.shape[0]
  for kind, a, b in zip(
    ('param', 'acc', 'mom'), _snapshot(scanned), _snapshot(stepped), strict=True
  ):
    _assert_dicts_close(a, b, 1e-6, 1e-6, kind)
  for a, b in zip(scanned.hidden, stepped.hidden, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(scanned_totals, stepped_totals, rtol=1e-6)
  assert scanned_totals[1] == schedule.num_events


def test_training_is_deterministic():
  first, first_totals = _run_chunks(seed=3)
  second, second_totals = _run_chunks(seed=3)
  for a, b in zip(_snapshot(first), _snapshot(second), strict=True):
    assert a.keys() == b.keys()
    for name in a:
      assert np.array_equal(a[name], b[name]), name
  for a, b in zip(first.hidden, second.hidden, strict=True):
    assert np.array_equal(a, b)
  assert np.array_equal(first_totals, second_totals)
  other, _ = _run_chunks(seed=4)
  assert not np.array_equal(
    _snapshot(other)[0]["['item_out']"], _snapshot(first)[0]["['item_out']"]
  )


def test_steps_per_call_does_not_change_training():
  """Padding an epoch to another chunk multiple gives the same model (padded steps are no-ops)."""
  rng = np.random.default_rng(5)
  lengths = rng.integers(2, 6, 12)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(0, N_ITEMS, offsets[-1]).astype(np.int32)
  counts = np.bincount(items, minlength=N_ITEMS) + 1
  results = []
  for steps in (1, 8):
    sched = build_schedule(items, offsets, 3, steps_multiple=steps)
    cfg = _step_config('xe', n_sample=3)
    model = _model('constrained', N_ITEMS, (5,))
    graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
    state = ts.init_train_state(model, 3, cfg.momentum, jax.random.key(1))
    chunk = ts.make_train_chunk(graphdef, cfg, counts, steps)
    arrays = {k: jnp.asarray(v) for k, v in sched.arrays().items()}
    for c in range(sched.chunks(steps)):
      state, _ = chunk(state, arrays, jnp.int32(c * steps))
    results.append(jax.tree.map(np.asarray, (state.tables, state.dense)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), *results)
