"""HRNN: forward timing vs a per-user numpy walk, its user-parallel update, its evaluator."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqrec import evaluation, user_evaluation
from seqrec import train_step as ts
from seqrec import user_train_step as uts
from seqrec.data import load_user_session_data
from seqrec.data.session_parallel import build_schedule
from seqrec.data.user_parallel import build_user_schedule, build_user_schedule_from_events
from seqrec.models.gru4rec import GRU4Rec, ItemTable
from seqrec.models.hrnn import HRNN
from tests import reference_gru4rec as ref

# -- Helpers -------------------------------------------------------------------------------------


def _model(mode, propagation, n_items=11, layers=(5,), user_units=4, *, seed=0, **dropouts):
  """An HRNN with every parameter, biases included, drawn from N(0, 0.5**2) (as in test_gru4rec)."""
  model = nnx.eval_shape(
    lambda: HRNN(
      n_items,
      layers,
      user_units,
      propagation,
      embedding=6 if mode == 'separate' else 0,
      constrained_embedding=mode == 'constrained',
      rngs=nnx.Rngs(0),
      **dropouts,
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
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  return jax.tree.map(lambda v: np.asarray(v, np.float64), pure)


def _session_step(params, mode, item, hidden, user):
  """One session-GRU step of one slot in numpy, the user state concatenated to the input."""
  if mode == 'onehot':
    n_items = params['item_in'].shape[0]
    bias = params['onehot_b']
    if user is not None:  # hgru4rec's Wu_to_s: the reset and update gates only (blocks 1, 2)
      bias = bias + np.concatenate(
        [np.zeros(hidden[0].shape[-1]), (user @ params['onehot_w_ctx'])[0]]
      )
    x = ref.gru_embedding(
      np, params['item_in'], params['onehot_w_hh'], bias, np.eye(n_items)[[item]], hidden[0]
    )
    new_hidden = [x]
  else:
    table = params['item_out'] if mode == 'constrained' else params['item_in']
    x = table[[item]]  # [1, D]
    if user is not None:
      x = np.concatenate([x, user], axis=1)
    new_hidden = []
  cells = params.get('cells', {})
  for j in range(len(cells)):
    x = ref.gru_cell(np, cells[j], x, hidden[len(new_hidden)])
    new_hidden.append(x)
  return x, new_hidden


def reference_user(params, mode, propagation, layers, sessions):
  """HRNN over one user's sessions, written from the paper's equations and hgru4rec's timing.

  c_0 = 0 and the first session starts from zero states; before every later session m the user
  GRU takes the previous session's final top-layer state, c_m = GRU_usr(s_{m-1}, c_{m-1}), and
  the first session layer restarts at tanh(c_m W_init + b_init) (upper layers carry over).
  Sessions of one event have no pair and are skipped, as by the schedule.

  Returns:
    Per session with pairs, the [L-1, H_last] outputs of its pairs.
  """
  sessions = [s for s in sessions if len(s) >= 2]
  units = params['user_cell']['w_hh'].shape[0]
  user = np.zeros((1, units))
  hidden = [np.zeros((1, u)) for u in layers]
  outputs = []
  for m, items in enumerate(sessions):
    if m > 0:
      user = ref.gru_cell(np, params['user_cell'], hidden[-1], user)
      hidden[0] = np.tanh(user @ params['init_w'] + params['init_b'])
    context = user if propagation == 'all' else None
    outs = []
    for item in items[:-1]:
      out, hidden = _session_step(params, mode, item, hidden, context)
      outs.append(out[0])
    outputs.append(np.stack(outs))
  return outputs


def _random_users(rng, n_users, n_items, max_sessions=4, max_len=5):
  """(items, session_offsets, user_offsets, per-user lists of sessions); some 1-event sessions."""
  users, items, lengths, n_sessions = [], [], [], []
  for _ in range(n_users):
    count = int(rng.integers(1, max_sessions + 1))
    sessions = [rng.integers(0, n_items, int(rng.integers(1, max_len + 1))) for _ in range(count)]
    sessions[0] = rng.integers(0, n_items, max(len(sessions[0]), 2))  # every user has a pair
    users.append(sessions)
    items.extend(sessions)
    lengths.extend(len(s) for s in sessions)
    n_sessions.append(count)
  session_offsets = np.concatenate([[0], np.cumsum(lengths)])
  user_offsets = np.concatenate([[0], np.cumsum(n_sessions)])
  return np.concatenate(items).astype(np.int32), session_offsets, user_offsets, users


def _step_config(loss='cross-entropy', n_sample=4, momentum=0.3, learning_rate=0.1):
  bpreg = 1.0 if loss == 'bpr-max' else 0.0
  return ts.StepConfig(loss, n_sample, 0.5, 0.0, bpreg, 0.5, learning_rate, momentum)


def _flat(tree):
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


# -- 1. Forward semantics ------------------------------------------------------------------------


@pytest.mark.parametrize(
  'mode, propagation, layers',
  [
    ('constrained', 'init', (5,)),
    ('constrained', 'all', (5, 3)),
    ('separate', 'all', (5,)),
    ('onehot', 'all', (5,)),
    ('onehot', 'init', (5, 3)),
  ],
)
def test_user_parallel_forward_matches_per_user_reference(mode, propagation, layers):
  """Flags-driven steps over a 3-slot schedule equal the per-user walk of the equations."""
  n_items = 11
  model = _model(mode, propagation, n_items, layers)
  params = _params64(model)
  items, session_offsets, user_offsets, users = _random_users(np.random.default_rng(1), 7, n_items)
  schedule = build_user_schedule(items, session_offsets, user_offsets, 3)
  assert schedule.user_start.sum() == 7 and (schedule.session_start & ~schedule.user_start).any()
  step = jax.jit(model.user_encode)
  hidden, user = model.init_hidden(3), model.init_user_hidden(3)
  # Stale states in every slot: a user start must not see them.
  hidden = tuple(h + 3.0 for h in hidden)
  user = user - 2.0
  outputs = {}  # session -> [out of each pair]
  for t in range(schedule.num_steps):
    out, hidden, user = step(
      jnp.asarray(schedule.inputs[t]),
      hidden,
      user,
      jnp.asarray(schedule.session_start[t]),
      jnp.asarray(schedule.user_start[t]),
    )
    for k in np.flatnonzero(schedule.valid[t]):
      outputs.setdefault(int(schedule.session[t, k]), []).append(np.asarray(out[k]))
  for u, sessions in enumerate(users):
    expected = reference_user(params, mode, propagation, layers, sessions)
    walked = [
      s for s in range(user_offsets[u], user_offsets[u + 1]) if np.diff(session_offsets)[s] >= 2
    ]
    assert len(walked) == len(expected)
    for s, exp in zip(walked, expected, strict=True):
      np.testing.assert_allclose(np.stack(outputs[s]), exp, rtol=1e-5, atol=1e-5)


def test_begin_sessions_timing_and_dropout():
  """Slot 0 starts a user, slot 1 a session of the same user, slot 2 continues its session."""
  p_user, p_init = 0.5, 0.25
  model = _model('constrained', 'init', layers=(5, 3), dropout_p_user=p_user, dropout_p_init=p_init)
  params = _params64(model)
  rng = np.random.default_rng(2)
  hidden = [rng.normal(size=(3, 5)), rng.normal(size=(3, 3))]
  user = rng.normal(size=(3, 4))
  session_start = jnp.asarray([True, True, False])
  user_start = jnp.asarray([True, False, False])
  as32 = lambda a: jnp.asarray(a, jnp.float32)
  for key in (None, jax.random.key(5)):
    new_hidden, new_user = model.begin_sessions(
      tuple(map(as32, hidden)), as32(user), session_start, user_start, key
    )
    scale_user = scale_init = np.ones((3, 1))
    if key is not None:  # masks drawn from the split key, inverted scaling
      key_user, key_init = jax.random.split(key)
      scale_user = np.asarray(jax.random.bernoulli(key_user, 1 - p_user, (3, 4))) / (1 - p_user)
      scale_init = np.asarray(jax.random.bernoulli(key_init, 1 - p_init, (3, 5))) / (1 - p_init)
    updated = ref.gru_cell(np, params['user_cell'], hidden[-1], user) * scale_user
    s0 = np.tanh(updated @ params['init_w'] + params['init_b']) * scale_init
    np.testing.assert_array_equal(new_user[0], 0.0)
    np.testing.assert_allclose(new_user[1], updated[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_user[2], user[2], rtol=1e-6)
    assert all(np.all(np.asarray(h[0]) == 0.0) for h in new_hidden)
    np.testing.assert_allclose(new_hidden[0][1], s0[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_hidden[1][1], hidden[1][1], rtol=1e-6)  # upper layer carried
    np.testing.assert_allclose(new_hidden[0][2], hidden[0][2], rtol=1e-6)
    if key is not None:
      assert np.any(np.asarray(new_user[1]) == 0.0)  # the carried user state is dropped out


def test_plain_session_step_is_a_zero_user_state():
  """The inherited GRU4Rec `encode` is HRNN at a user start (all variant: a zero user input)."""
  model = _model('separate', 'all', layers=(5,))
  items = jnp.asarray([3, 0, 7])
  zeros, user = model.init_hidden(3), model.init_user_hidden(3) + 1.0
  starts = jnp.ones((3,), bool)
  out, hidden = model.encode(items, zeros)
  user_out, user_hidden, new_user = model.user_encode(items, zeros, user, starts, starts)
  np.testing.assert_allclose(out, user_out, rtol=1e-6)
  np.testing.assert_array_equal(new_user, 0.0)


# -- 2. The user-parallel update -----------------------------------------------------------------

N_ITEMS, BATCH, STEPS_PER_CALL = 13, 3, 4


@functools.cache
def _epoch():
  items, session_offsets, user_offsets, _ = _random_users(np.random.default_rng(3), 8, N_ITEMS)
  schedule = build_user_schedule(
    items, session_offsets, user_offsets, BATCH, steps_multiple=STEPS_PER_CALL
  )
  assert not schedule.valid.all()  # a padded tail
  return schedule, np.bincount(items, minlength=N_ITEMS) + 1


def _dropout_model(seed=0):
  return _model(
    'constrained',
    'all',
    N_ITEMS,
    (6,),
    5,
    seed=seed,
    dropout_p_embed=0.1,
    dropout_p_hidden=0.2,
    dropout_p_user=0.3,
    dropout_p_init=0.2,
  )


@functools.cache
def _update_fns(cfg):
  graphdef, _, _ = nnx.split(_dropout_model(), ItemTable, nnx.Param)
  counts = _epoch()[1]
  chunk = uts.make_user_train_chunk(graphdef, cfg, counts, STEPS_PER_CALL)
  return chunk, jax.jit(uts.make_user_update_fn(graphdef, cfg, counts))


def _snapshot(state):
  return _flat(
    (state.tables, state.dense, state.dense_opt, state.table_opt, state.hidden, state.user_hidden)
  )


def test_scanned_chunks_equal_step_by_step():
  """Dropout and negatives included: the scan consumes the per-step keys as single steps do."""
  cfg = _step_config('bpr-max')
  schedule = _epoch()[0]
  chunk, update = _update_fns(cfg)
  arrays = {k: jnp.asarray(v) for k, v in schedule.arrays().items()}
  fresh = lambda: uts.init_user_train_state(_dropout_model(), BATCH, 0.3, jax.random.key(4))
  scanned, totals = fresh(), np.zeros(2)
  for c in range(schedule.chunks(STEPS_PER_CALL)):
    scanned, stats = chunk(scanned, arrays, jnp.int32(c * STEPS_PER_CALL))
    totals += np.asarray(stats)
  stepped, step_totals = fresh(), np.zeros(2)
  for t in range(schedule.inputs.shape[0]):
    stepped, stats = update(stepped, {k: v[t] for k, v in arrays.items()})
    step_totals += np.asarray(stats)
  assert isinstance(scanned, uts.UserTrainState)
  assert int(scanned.step) == int(stepped.step) == schedule.inputs.shape[0]
  a, b = _snapshot(scanned), _snapshot(stepped)
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(totals, step_totals, rtol=1e-5)
  assert totals[1] == schedule.num_events


def test_user_level_learns_only_from_session_start_steps():
  """The loss reaches the user GRU and the initialisation through this step's session start only.

  Without momentum, a weight moves exactly when its gradient is non-zero. From the same non-zero
  carried states: a step without session starts leaves the user level (`init` variant) alone, as
  does a step of user starts only (both states are zero there); a step where a user's next
  session starts moves every user-level weight.
  """
  cfg = _step_config(momentum=0.0)
  model = _model('constrained', 'init', N_ITEMS, (6,), 5)
  graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
  update = jax.jit(uts.make_user_update_fn(graphdef, cfg, np.ones(N_ITEMS)))
  state = uts.init_user_train_state(model, 2, 0.0, jax.random.key(0))
  state = dataclasses.replace(
    state, hidden=(jnp.full((2, 6), 0.5),), user_hidden=jnp.full((2, 5), 0.3)
  )

  def user_level(state):
    dense = nnx.to_pure_dict(state.dense)
    return _flat({k: dense[k] for k in ('user_cell', 'init_w', 'init_b')})

  before = user_level(state)
  for session_start, user_start, moves in [
    ([False, False], [False, False], False),
    ([True, True], [True, True], False),
    ([False, True], [False, False], True),
  ]:
    batch = {
      'inputs': jnp.asarray([1, 2]),
      'targets': jnp.asarray([3, 4]),
      'valid': jnp.ones((2,), bool),
      'session_start': jnp.asarray(session_start),
      'user_start': jnp.asarray(user_start),
    }
    after = user_level(update(state, batch)[0])
    for name in before:
      assert np.array_equal(before[name], after[name]) != moves, (session_start, name)


# -- 3. Evaluation -------------------------------------------------------------------------------


@functools.cache
def _small_data():
  return load_user_session_data(
    {
      'format': 'user_synthetic',
      'synthetic_users': 30,
      'synthetic_items': 40,
      'synthetic_clusters': 4,
      'min_item_support': 1,
      'min_sessions_per_user': 2,
      'seed': 5,
    }
  )


def _user_sessions(table, user):
  offsets = table.session_offsets()
  mine = np.flatnonzero(table.user[offsets[:-1]] == user)
  return [table.item[offsets[s] : offsets[s + 1]] for s in mine]


def _reference_ranks(model, mode, propagation, layers, history, held_out, user):
  """Conservative full-catalogue ranks of the user's held-out targets, by the numpy walk."""
  params = _params64(model)
  held = _user_sessions(held_out, user)
  sessions = _user_sessions(history, user) + held
  outputs = reference_user(params, mode, propagation, layers, sessions)[-len(held) :]
  ranks = []
  for items, out in zip(held, outputs, strict=True):
    scores = out @ params['item_out'].T + params['item_bias']  # [L-1, N]
    target = scores[np.arange(len(items) - 1), items[1:]]
    ranks.append((scores >= target[:, None]).sum(axis=1))
  return np.concatenate(ranks)


def test_evaluation_matches_reference_walk():
  """History pairs only build the states; every held-out pair is ranked over the catalogue."""
  data = _small_data()
  model = _model('constrained', 'all', data.n_items, (6,), 5, seed=1)
  result = user_evaluation.held_out_ranks(
    model, data.train, data.test, batch_size=4, steps_per_call=8
  )
  by_user = result.by_user()
  assert sorted(by_user) == sorted(np.unique(data.test.user).tolist())
  for user, ranks in by_user.items():
    expected = _reference_ranks(model, 'constrained', 'all', (6,), data.train, data.test, user)
    np.testing.assert_array_equal(ranks, expected, err_msg=f'user {user}')
  # Only held-out pairs are scored, and positions restart in every session.
  n_pairs = data.test.num_events - data.test.num_sessions
  assert result.scored.sum() == n_pairs and np.isfinite(result.ranks[result.scored]).all()
  assert (result.position[result.scored] == 0).sum() == data.test.num_sessions


def test_metrics_first_n_and_batch_size_invariance():
  data = _small_data()
  model = _model('onehot', 'init', data.n_items, (6,), 5, seed=2)
  kwargs = dict(cutoffs=(5, 20), first_n=(1, 2), steps_per_call=8)
  small = user_evaluation.evaluate_users(model, data.train, data.test, batch_size=3, **kwargs)
  large = user_evaluation.evaluate_users(model, data.train, data.test, batch_size=64, **kwargs)
  assert small.keys() == large.keys()
  for name in small:
    np.testing.assert_allclose(small[name], large[name], rtol=1e-6, err_msg=name)
  ranks = user_evaluation.held_out_ranks(model, data.train, data.test, batch_size=5).by_user()
  for k in (1, 2):
    first = np.concatenate([r[:k] for r in ranks.values()])  # one held-out session per user
    assert small[f'count/first{k}'] == len(first)
    np.testing.assert_allclose(small[f'recall@5/first{k}'], np.mean(first <= 5), rtol=1e-6)
    np.testing.assert_allclose(small[f'mrr@20/first{k}'], np.mean((first <= 20) / first), rtol=1e-5)
  assert small['count'] == data.test.num_events - data.test.num_sessions


def test_without_user_state_equals_session_evaluation():
  """`use_user_state=False` scores the held-out pairs as GRU4Rec's evaluator does."""
  data = _small_data()
  model = _model('separate', 'all', data.n_items, (6,), 5, seed=3)
  mine = user_evaluation.evaluate_users(
    model, data.train, data.test, batch_size=4, steps_per_call=8, use_user_state=False
  )
  theirs = evaluation.evaluate_sessions(model, data.test, batch_size=4, steps_per_call=8)
  assert mine.keys() == theirs.keys()
  for name in mine:
    np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-6, err_msg=name)
  with_user = user_evaluation.evaluate_users(model, data.train, data.test, batch_size=4)
  assert with_user['count'] == mine['count'] and with_user['mrr@20'] != mine['mrr@20']
  with pytest.raises(ValueError, match='no user state'):
    user_evaluation.evaluate_users(GRU4Rec(data.n_items, rngs=nnx.Rngs(0)), data.train, data.test)


def test_no_leakage_from_held_out_futures():
  """Changing held-out items changes no earlier prediction of that session, nor other users'.

  The first prediction of a held-out session depends on its first two items and the history
  only: the held-out session never reaches the user state before it is scored.
  """
  data = _small_data()
  model = _model('constrained', 'init', data.n_items, (6,), 5, seed=4)
  rank = lambda test: user_evaluation.held_out_ranks(
    model, data.train, test, batch_size=4, steps_per_call=8
  ).by_user()
  base = rank(data.test)
  offsets = data.test.session_offsets()
  position = np.arange(data.test.num_events) - np.repeat(offsets[:-1], np.diff(offsets))
  rng = np.random.default_rng(0)
  for first_changed in (2, 3):
    items = np.where(
      position >= first_changed, rng.integers(0, data.n_items, data.test.num_events), data.test.item
    ).astype(data.test.item.dtype)
    changed = rank(data.test.with_items(items))
    kept = first_changed - 1  # pairs whose input and target are both unchanged
    for user, ranks in base.items():
      np.testing.assert_array_equal(changed[user][:kept], ranks[:kept], err_msg=f'user {user}')
    assert any(not np.array_equal(changed[u][kept:], r[kept:]) for u, r in base.items())
  # Another user's held-out session is invisible to this one.
  user0 = data.test.user == data.test.user[0]
  items = np.where(user0, rng.integers(0, data.n_items, data.test.num_events), data.test.item)
  changed = rank(data.test.with_items(items.astype(data.test.item.dtype)))
  for user, ranks in base.items():
    if user != data.test.user[0]:
      np.testing.assert_array_equal(changed[user], ranks, err_msg=f'user {user}')


# -- 4. The planted user taste -------------------------------------------------------------------


def _train_and_evaluate(user_taste, seed, hierarchical):
  """Recall@20 over the first 3 predictions of each test session, after 3 epochs."""
  data = load_user_session_data(
    {
      'format': 'user_synthetic',
      'synthetic_users': 400,
      'synthetic_items': 200,
      'synthetic_clusters': 10,
      'user_taste': user_taste,
      'min_item_support': 1,
      'min_sessions_per_user': 3,
      'seed': seed,
    }
  )
  cfg = ts.StepConfig('cross-entropy', 32, 0.5, 0.0, 0.0, 0.0, 0.1, 0.0)
  batch, steps = 32, 16
  train = data.train
  if hierarchical:
    model = HRNN(data.n_items, (32,), 32, 'init', rngs=nnx.Rngs(seed))
    schedule, _ = build_user_schedule_from_events(train, batch, steps_multiple=steps)
    state = uts.init_user_train_state(model, batch, 0.0, jax.random.key(seed))
    make_chunk = uts.make_user_train_chunk
  else:
    model = GRU4Rec(data.n_items, (32,), rngs=nnx.Rngs(seed))
    schedule = build_schedule(train.item, train.session_offsets(), batch, steps_multiple=steps)
    state = ts.init_train_state(model, batch, 0.0, jax.random.key(seed))
    make_chunk = ts.make_train_chunk
  graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
  chunk = make_chunk(graphdef, cfg, data.item_counts, steps)
  arrays = {k: jnp.asarray(v) for k, v in schedule.arrays().items()}
  for _ in range(3):
    for c in range(schedule.chunks(steps)):
      state, _ = chunk(state, arrays, jnp.int32(c * steps))
  trained = nnx.merge(graphdef, state.tables, state.dense)
  metrics = user_evaluation.evaluate_users(
    trained,
    data.train,
    data.test,
    batch_size=128,
    steps_per_call=steps,
    use_user_state=hierarchical,
    first_n=(3,),
  )
  return metrics['recall@20/first3']


def test_user_state_helps_the_first_predictions_only_with_a_user_taste():
  """HRNN-init vs a same-size GRU4Rec on the same sessions, 2 seeds.

  Seen on 4 seeds: with user_taste=0.8 HRNN leads by 0.065-0.098 Recall@20 over the first 3
  predictions; with user_taste=0 by 0.001-0.015.
  """
  gains = {}
  for taste in (0.8, 0.0):
    gains[taste] = np.mean(
      [_train_and_evaluate(taste, s, True) - _train_and_evaluate(taste, s, False) for s in (0, 1)]
    )
  assert gains[0.8] > 0.04, gains
  assert abs(gains[0.0]) < 0.03, gains
