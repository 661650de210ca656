"""Data parallelism: training on a 2-device mesh gives the numbers of one device."""

import os
import subprocess
import sys
import textwrap

import pytest

from seqrec import sharding

SCRIPT = textwrap.dedent(
  """
  import jax, jax.numpy as jnp, numpy as np
  from flax import nnx
  from seqrec import sharding, train_step as ts
  from seqrec.data.session_parallel import build_schedule
  from seqrec.models.gru4rec import GRU4Rec, ItemTable

  assert len(jax.devices()) == 2, jax.devices()
  rng = np.random.default_rng(0)
  lengths = rng.integers(2, 7, 60)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(0, 40, offsets[-1]).astype(np.int32)
  counts = np.bincount(items, minlength=40) + 1
  sched = build_schedule(items, offsets, 4, steps_multiple=8)
  cfg = ts.StepConfig('bpr-max', 6, 0.5, 0.0, 1.0, 0.5, 0.1, 0.3)
  results = []
  for n in (1, 2):
    mesh = sharding.make_mesh(n, 4)
    model = GRU4Rec(40, layers=(8,), dropout_p_hidden=0.2, rngs=nnx.Rngs(0))
    graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
    state = sharding.place_state(ts.init_train_state(model, 4, 0.3, jax.random.PRNGKey(0)), mesh)
    arrays = sharding.shard_schedule(sched.arrays(), mesh)
    chunk = ts.make_train_chunk(graphdef, cfg, counts, 8)
    for c in range(sched.chunks(8)):
      state, stats = chunk(state, arrays, jnp.int32(c * 8))
    if n == 2:
      assert len(state.hidden[0].sharding.device_set) == 2
    results.append(jax.tree.map(np.asarray, (state.tables, state.dense, state.hidden)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), *results)
  print('OK')
  """
)


def test_two_device_mesh_matches_one_device():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-c', SCRIPT], env=env, capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'OK' in out.stdout


def test_mesh_arguments_are_checked():
  assert sharding.make_mesh(1, 8) is None
  with pytest.raises(ValueError, match='num_devices'):
    sharding.make_mesh(1000, 8)
  with pytest.raises(ValueError, match='--config.num_devices=-1: expected 0'):
    sharding.make_mesh(-1, 8)  # was taken for one device


SEQUENCE_SCRIPT = textwrap.dedent(
  """
  import json, sys
  import jax, numpy as np
  from seqrec import seq_train, sharding
  from seqrec.configs import sequence_test

  assert len(jax.devices()) == 2, jax.devices()
  root = sys.argv[1]
  runs = {}
  placed = []  # per call: devices holding the batch indices, and the rows of one device's share
  shard_schedule = sharding.shard_schedule

  def spy(arrays, mesh):
    out = shard_schedule(arrays, mesh)
    idx = out['indices']
    placed.append((len(idx.sharding.device_set), idx.addressable_shards[0].data.shape[1]))
    return out

  sharding.shard_schedule = spy
  for model in ('sasrec', 'bert4rec'):
    for n in (1, 2):
      config = sequence_test.get_config()
      config.model, config.num_devices, config.n_epochs = model, n, 2
      placed.clear()
      runs[model, n] = seq_train.train_and_evaluate_sequences(config, f'{root}/{model}-{n}')
      assert set(placed) == {(n, config.batch_size // n)}, placed
  for model in ('sasrec', 'bert4rec'):
    losses = [
      [json.loads(line)['train_loss'] for line in open(f'{root}/{model}-{n}/metrics.jsonl')
       if 'train_loss' in line]
      for n in (1, 2)
    ]
    assert len(losses[0]) == 2, losses
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    one, two = runs[model, 1]['test'], runs[model, 2]['test']
    for k in one:
      np.testing.assert_allclose(one[k], two[k], atol=0.02, err_msg=f'{model} {k}')
  print('OK')
  """
)


def test_sequence_models_on_a_two_device_mesh_match_one_device(tmp_path):
  """SASRec (sampled BCE) and BERT4Rec (masking drawn on device) train to the same losses."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-c', SEQUENCE_SCRIPT, str(tmp_path)],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'OK' in out.stdout
