"""Follows docs/extending.md: a model, loss, reader and baseline added without editing seqrec."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from seqrec import analysis, baselines, seq_losses, seq_train, seq_train_step, train
from seqrec.baselines.params import require
from seqrec.baselines.protocol import Prefixes
from seqrec.configs import baseline_base, sequence_test
from seqrec.configs import test as test_config
from seqrec.data import DataError, Events, load_session_data, loading, readers, sequence_batches
from seqrec.data.user_sequences import load_sequence_data
from seqrec.models import sequential
from seqrec.train import ConfigError

# --- 1. A user-sequence model ---------------------------------------------------------------------


class LastItem(nnx.Module):
  """Next-item scores from the last item alone: `score(j) = e_in[last] . e_out[j]`.

  A factorised first-order Markov chain, which is what the synthetic sequences plant.

  Args:
    n_items: catalogue size N (ids 1..N, 0 = padding).
    hidden: embedding size D.
    rngs: parameter RNG.
  """

  def __init__(self, n_items: int, *, hidden: int, rngs: nnx.Rngs):
    if hidden < 1:
      raise ValueError(f'hidden={hidden!r} must be positive')
    init = jax.nn.initializers.normal(0.1)
    self.n_items = int(n_items)
    self.item_embedding = nnx.Param(init(rngs.params(), (n_items + 1, hidden)))
    self.output_embedding = nnx.Param(init(rngs.params(), (n_items + 1, hidden)))

  def encode(self, inputs: jax.Array) -> jax.Array:
    """[...] item ids -> [..., D] queries (the padding id gives zeros)."""
    return self.item_embedding[...].at[0].set(0.0)[inputs]

  def training_view(self, batch: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """({'inputs' [B, L], 'targets' [B, L]}, key) -> (h [B, L, D], targets [B, L])."""
    del key  # no dropout
    return self.encode(batch['inputs']), batch['targets']

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    """[B, W] left-padded histories (users unused) -> [B, D] query for the next item."""
    del users
    return self.encode(history[:, -1])

  def score_items(self, h: jax.Array, items: jax.Array) -> jax.Array:
    """h [..., D] (broadcastable against items' leading axes), items [..., K] -> [..., K]."""
    rows = self.output_embedding[...][items]  # [..., K, D]
    return jnp.sum(h[..., None, :] * rows, axis=-1)

  def score_catalog(self, h: jax.Array) -> jax.Array:
    """[..., D] -> [..., N+1] scores of every id (column 0 is padding)."""
    return h @ self.item_vectors().T

  def item_vectors(self) -> jax.Array:
    """[N+1, D] the vectors items are scored with: score = query . vector."""
    return self.output_embedding[...]


def build_lastitem(config, n_items: int, n_users: int, rngs: nnx.Rngs) -> LastItem:
  del n_users
  return LastItem(n_items, hidden=int(config.lastitem.hidden), rngs=rngs)


@pytest.fixture
def lastitem(monkeypatch):
  """Registers 'lastitem' at every place the guide lists; monkeypatch restores them all."""
  monkeypatch.setitem(sequential.SEQUENCE_MODELS, 'lastitem', build_lastitem)
  monkeypatch.setitem(sequential._DEFAULTS, 'lastitem', dict(max_len=16, hidden=16))
  monkeypatch.setitem(seq_losses.DEFAULT_LOSS, 'lastitem', ('bce', 1))
  monkeypatch.setitem(seq_losses.DEFAULT_LOSS_KWARGS, 'lastitem', {})
  # `history_length` and `build_examples` are if-chains on the name: wrapped, not registered.
  # `analysis` imported `history_length` by name, so it is patched there as well.
  history_length = sequential.history_length

  def lastitem_history_length(config) -> int:
    return 1 if config.model == 'lastitem' else history_length(config)

  monkeypatch.setattr(sequential, 'history_length', lastitem_history_length)
  monkeypatch.setattr(analysis, 'history_length', lastitem_history_length)
  build_examples = seq_train.build_examples

  def lastitem_examples(config, data):
    if config.model == 'lastitem':  # SASRec's windows: every position predicts its next item
      return sequence_batches.sasrec_examples(data.train, int(config.lastitem.max_len))
    return build_examples(config, data)

  monkeypatch.setattr(seq_train, 'build_examples', lastitem_examples)


def lastitem_config() -> ml_collections.ConfigDict:
  """`configs/sequence_test.py` (which now holds `config.lastitem`), as test_seq_train trains."""
  config = sequence_test.get_config()
  config.model = 'lastitem'
  config.learning_rate = 1e-2
  config.n_epochs = 4
  return config


def test_a_registered_model_gets_its_defaults_and_its_checks(lastitem):
  config = lastitem_config()
  assert dict(config.lastitem) == dict(max_len=16, hidden=16)
  seq_train.validate_sequence_config(config)
  assert seq_train_step.resolve_loss(config) == ('bce', 1, {})
  config.lastitem.hidden = 0  # a field named 'hidden' is checked positive for every model
  with pytest.raises(ConfigError, match=r'--config\.lastitem\.hidden=0: expected a positive'):
    seq_train.validate_sequence_config(config)


def test_a_registered_model_trains_beats_popularity_and_restores(lastitem, tmp_path):
  config = lastitem_config()
  result = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  test, pop = result['test'], result['popularity_test']
  assert result['epochs'] == 4 and test['count'] == pop['count'] > 250
  # Observed (data seeds 0-3, model seeds 5-8): NDCG@10 0.48-0.53 vs POP 0.14-0.19, Recall@10
  # 0.67-0.72 vs 0.30-0.34; the chain is first-order, so the last item is nearly all there is.
  assert test['ndcg@10'] >= 2.0 * pop['ndcg@10']
  assert test['recall@10'] >= 1.5 * pop['recall@10']

  run = analysis.load_run(str(tmp_path), device='cpu')
  assert isinstance(run, analysis.SequenceRun) and isinstance(run.model, LastItem)
  data = load_sequence_data(config.data)
  split = seq_train.eval_split(data, 'test', sequential.history_length(config))
  restored = seq_train.evaluate(run.model, split, config, data.item_counts)
  assert restored == pytest.approx(test)  # load_run restores the tested (best) parameters
  items = run.item_ids[data.test_history.row(0)].tolist()
  np.testing.assert_array_equal(run.score_history(items), run.score_history(items[-1:]))
  assert run.item_embeddings().shape == (data.n_items + 1, 16)


# --- 2. A loss ------------------------------------------------------------------------------------


def hinge(
  pos: jax.Array, neg: jax.Array, mask: jax.Array, *, margin: float = 1.0
) -> tuple[jax.Array, jax.Array]:
  """Pairwise hinge `sum_k max(0, margin - pos + neg_k)` per counted target.

  Args:
    pos: [B, P] target scores.
    neg: [B, P, K] negative scores.
    mask: [B, P] bool, the positions that count.
    margin: the score gap below which a negative costs.

  Returns:
    (loss summed over counted positions, number of counted positions), float32 scalars.
  """
  mask = mask.astype(bool)
  pos = jnp.where(mask, pos, 0.0)  # uncounted positions may hold NaN: keep it out of gradients
  neg = jnp.where(mask[..., None], neg, 0.0)
  per_target = jnp.sum(jax.nn.relu(margin - pos[..., None] + neg), axis=-1)  # [B, P]
  loss = jnp.sum(jnp.where(mask, per_target, 0.0), dtype=jnp.float32)
  return loss, jnp.sum(mask, dtype=jnp.float32)


def test_a_registered_loss_is_accepted_and_called_by_the_step(lastitem, monkeypatch):
  monkeypatch.setitem(seq_losses.LOSSES, 'hinge', hinge)
  config = lastitem_config()
  config.loss, config.n_negatives = 'hinge', 3
  config.negatives_exclude_seen = False  # uniform negatives: no exclusion search to compile
  seq_train.validate_sequence_config(config)
  assert seq_train_step.resolve_loss(config) == ('hinge', 3, {})
  n_items = 20
  model = seq_train.build_model(config, n_items, n_users=4)
  rng = np.random.default_rng(0)
  inputs = rng.integers(0, n_items + 1, (4, 16)).astype(np.int32)  # [B, L]
  targets = np.where(inputs > 0, np.roll(inputs, -1, axis=1), 0)  # [B, L]
  loss_fn = seq_train_step.make_loss(seq_train_step.step_config(config, n_items), n_items)

  @nnx.jit
  def step_and_direct(model, key):
    h, t = model.training_view({'inputs': inputs, 'targets': targets}, key)
    step = loss_fn(model, h, t, key, np.concatenate([inputs, targets], axis=1))
    negatives = seq_losses.sample_negatives(key, t.shape + (3,), n_items)  # [B, L, 3]
    pos = model.score_items(h, t[..., None])[..., 0]  # [B, L]
    return step, hinge(pos, model.score_items(h, negatives), t > 0), pos

  (loss, n), expected, pos = step_and_direct(model, jax.random.key(0))
  np.testing.assert_allclose(loss, expected[0], rtol=1e-5)
  assert float(n) == expected[1] == np.sum(targets > 0)
  # Uncounted positions cost nothing, whatever they hold (test_seq_losses checks every loss so).
  bad_pos = jnp.where(targets > 0, pos, jnp.nan)
  grad = jax.grad(lambda p: hinge(p, jnp.zeros(p.shape + (3,)), targets > 0)[0])(bad_pos)
  assert np.all(np.isfinite(np.asarray(grad)))


# --- 3. A data format -----------------------------------------------------------------------------

CLICKS_CSV_HEADER = 'session_id,item_id,timestamp'


def read_clicks_csv(path) -> Events:
  """Reads `session_id,item_id,timestamp` lines (a header first; timestamps in unix seconds).

  Returns:
    Raw events, sorted by (session, time).

  Raises:
    DataError: on a missing/empty file, a missing column or a value that does not parse.
  """
  path = readers.check_file(path)
  columns = [
    readers._Column('session_id', 'int'),
    readers._Column('item_id', 'int'),
    readers._Column('timestamp', 'float'),
  ]
  usecols = readers._header_columns(path, ',', columns, CLICKS_CSV_HEADER)
  session, item, time = readers._read_columns(path, ',', columns, usecols, skiprows=1)
  return Events(session, item, time, source=str(path)).sort()


def test_a_registered_session_format_loads_and_names_bad_lines(monkeypatch, tmp_path):
  monkeypatch.setattr(loading, 'FORMATS', (*loading.FORMATS, 'clicks_csv'))
  read_events = loading.read_events

  def with_clicks_csv(options, path):
    if options.format == 'clicks_csv':
      return read_clicks_csv(path)
    return read_events(options, path)

  monkeypatch.setattr(loading, 'read_events', with_clicks_csv)
  lines = [CLICKS_CSV_HEADER]
  for s in range(40):  # 40 sessions of 3 clicks over 6 items
    lines += [f'{s},{(s + j) % 6 + 10},{s * 100 + j}' for j in range(3)]
  path = tmp_path / 'clicks.csv'
  path.write_text('\n'.join(lines) + '\n')
  data = load_session_data(
    dict(format='clicks_csv', train_path=str(path), test_days=0, test_fraction=0.25)
  )
  assert data.n_items == 6 and data.test.num_events == 30
  bad = tmp_path / 'bad.csv'
  bad.write_text(f'{CLICKS_CSV_HEADER}\n1,10,0\n1,x,1\n')
  with pytest.raises(DataError, match=r"bad\.csv, line 3: expected an integer for 'item_id'"):
    load_session_data(dict(format='clicks_csv', train_path=str(bad)))


# --- 4. A baseline --------------------------------------------------------------------------------


class SignedPop:
  """Items scored by `sign` times their training count: POP (1) or reverse popularity (-1)."""

  def __init__(self, sign: int = 1):
    require(sign in (1, -1), 'sign', sign, '1 (popularity) or -1 (reverse popularity)')
    self.sign = int(sign)

  def fit(self, train: Events, n_items: int) -> None:
    self.counts = np.bincount(train.item, minlength=n_items).astype(np.int32)  # [N]

  def score(self, prefixes: Prefixes) -> np.ndarray:
    return np.broadcast_to(self.sign * self.counts, (prefixes.size, len(self.counts)))  # [P, N]


def signedpop_config(sign) -> ml_collections.ConfigDict:
  """test_baselines' `tiny_config` with the new baseline's hyperparameters."""
  config = baseline_base.get_config()
  config.model = 'signedpop'
  config.data = test_config.get_config().data
  config.data.update(dict(synthetic_sessions=1500, synthetic_items=300))
  config.eval.batch_size = 100
  config.baseline.signedpop = ml_collections.ConfigDict(dict(sign=sign))
  return config


def test_a_registered_baseline_runs_as_its_definition_implies(monkeypatch, tmp_path):
  monkeypatch.setitem(baselines.BASELINES, 'signedpop', lambda params, seed: SignedPop(**params))
  with pytest.raises(ConfigError, match=r'--config\.baseline\.signedpop\.sign=0: expected 1'):
    train.validate_config(signedpop_config(0))
  same = train.train_and_evaluate(signedpop_config(1), str(tmp_path / 'pop'))
  assert same['test'] == pytest.approx(same['popularity_test'])  # sign 1 is POP, ties included
  reverse = train.train_and_evaluate(signedpop_config(-1), str(tmp_path / 'reverse'))
  test, pop = reverse['test'], reverse['popularity_test']
  assert test['count'] == pop['count'] > 100
  assert test['recall@20'] < pop['recall@20'] and test['mrr@20'] < pop['mrr@20']
