"""`analysis.load_run` on a finished run: scores, top-k, neighbours, and errors by raw item id."""

import shutil

import jax
import numpy as np
import pytest

from seqrec import analysis
from seqrec.checkpointing import CheckpointMismatchError
from seqrec.data import ItemVocab, load_session_data


@pytest.fixture(scope='module')
def run(trained_run):
  return analysis.load_run(str(trained_run.workdir), device='cpu')


@pytest.fixture(scope='module')
def prefix(run, trained_run) -> list[int]:
  """The first three raw items of the first test session."""
  test = load_session_data(trained_run.config.data).test
  offsets = test.session_offsets()
  assert offsets[1] - offsets[0] >= 2
  items = np.asarray(test.item)[offsets[0] : min(offsets[1], offsets[0] + 3)]
  return [int(i) for i in run.vocab.decode(items)]


def test_load_run_on_cpu(run, trained_run):
  assert run.workdir == str(trained_run.workdir)
  assert run.config.layers == list(trained_run.config.layers)  # JSON round trip
  cpu = jax.devices('cpu')[0]
  assert run.model.item_out[...].devices() == {cpu}
  emb = run.item_embeddings()
  assert emb.shape == (run.vocab.size, trained_run.config.layers[-1])
  assert np.isfinite(emb).all()


def test_top_k_ranks_raw_ids_by_score(run, prefix):
  scores = run.score_session(prefix)
  assert scores.shape == (run.vocab.size,)
  top = run.top_k(prefix, k=10)
  assert len(top) == 10
  ids = [item for item, _ in top]
  values = np.array([score for _, score in top])
  assert len(set(ids)) == 10 and set(ids) <= set(run.vocab.ids.tolist())
  assert np.all(np.diff(values) <= 0)
  dense = run.dense_ids(ids)
  np.testing.assert_array_equal(values, scores[dense].astype(np.float64))
  # Nothing outside the list scores above its last entry.
  assert np.sum(scores > values[-1]) <= 9


def test_top_k_exclude_seen(run, prefix):
  top = run.top_k(prefix, k=run.vocab.size, exclude_seen=True)
  ranked = [item for item, _ in top]
  seen = set(prefix)
  assert not seen & set(ranked[: run.vocab.size - len(seen)])


def test_score_session_depends_on_the_whole_prefix(run, prefix):
  assert not np.allclose(run.score_session(prefix), run.score_session(prefix[-1:]))


def test_nearest_items_excludes_the_item_itself(run, prefix):
  item = prefix[0]
  neighbours = run.nearest_items(item, k=5)
  assert len(neighbours) == 5
  ids = [i for i, _ in neighbours]
  cosines = np.array([c for _, c in neighbours])
  assert item not in ids
  assert np.all(np.diff(cosines) <= 0) and np.all(np.abs(cosines) <= 1 + 1e-6)
  # Against brute-force cosine similarity over the item table.
  emb = run.item_embeddings().astype(np.float64)
  i = int(run.dense_ids([item])[0])
  sims = emb @ emb[i] / (np.linalg.norm(emb, axis=1) * np.linalg.norm(emb[i]))
  sims[i] = -np.inf
  np.testing.assert_allclose(cosines, np.sort(sims)[::-1][:5], rtol=1e-5)


def test_unknown_items_raise_key_error_naming_them(run, prefix):
  unknown = int(run.vocab.ids.max()) + 1000
  with pytest.raises(KeyError, match=str(unknown)):
    run.top_k([prefix[0], unknown])
  with pytest.raises(KeyError, match=str(unknown)):
    run.score_session([unknown])
  with pytest.raises(KeyError, match=str(unknown)):
    run.nearest_items(unknown)
  with pytest.raises(KeyError, match='not-an-id'):
    run.top_k(['not-an-id'])
  with pytest.raises(KeyError, match='are not ids'):  # refused, never truncated to an item
    run.top_k([float(prefix[0])])


def test_load_run_rejects_a_directory_that_is_not_a_run(tmp_path):
  with pytest.raises(FileNotFoundError, match='not a seqrec run'):
    analysis.load_run(str(tmp_path))


def test_load_run_without_checkpoint_raises(trained_run, tmp_path):
  for name in ('config.json', 'item_vocab.npz'):
    shutil.copy(trained_run.workdir / name, tmp_path / name)
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    analysis.load_run(str(tmp_path), device='cpu')


def test_list_lengths_and_an_empty_prefix_are_checked(run):
  with pytest.raises(ValueError, match='at least one item'):
    run.score_session([])
  item = run.vocab.ids[0].item()
  for bad in (0, -1, 2.5):
    with pytest.raises(ValueError, match=f'k={bad!r}: expected a positive integer'):
      run.top_k([item], k=bad)
  everything = run.nearest_items(item, k=10**6)  # at most every other item
  assert len(everything) == run.vocab.size - 1
  assert item not in [i for i, _ in everything]


def test_a_long_top_k_lists_only_items_it_may_recommend(run, prefix):
  """k above the catalogue gives every item once, never an excluded (seen) one."""
  listed = [i for i, _ in run.top_k(prefix, k=10**6, exclude_seen=True)]
  assert len(listed) == len(set(listed)) == run.vocab.size - len(set(prefix))
  assert not set(listed) & set(prefix)
  assert len(run.top_k(prefix, k=10**6)) == run.vocab.size


@pytest.mark.parametrize('bad', ['45', 45, None])
def test_a_prefix_that_is_not_a_list_of_ids_is_named(run, prefix, bad):
  """A string would be read character by character, a number or None has no items."""
  with pytest.raises(TypeError, match='items: expected a list of item ids'):
    run.score_session(bad if bad != '45' else str(prefix[0]))


def test_a_nested_prefix_is_named(run, prefix):
  with pytest.raises(TypeError, match='expected single item ids'):
    run.top_k([prefix])
  assert run.top_k(np.array(prefix), k=3) == run.top_k(prefix, k=3)  # a 1-D array is a list


def test_load_run_refuses_an_item_vocab_of_another_run(trained_run, tmp_path):
  """A hand-copied item_vocab.npz of the same size but another id order would silently map every
  row to the wrong raw item; the checkpoint's vocabulary digest refuses it."""
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run.workdir, workdir)
  vocab = ItemVocab.load(workdir / 'item_vocab.npz')
  ItemVocab(vocab.ids[::-1].copy()).save(workdir / 'item_vocab.npz')
  with pytest.raises(CheckpointMismatchError, match='item_vocab.npz does not belong'):
    analysis.load_run(str(workdir), device='cpu')
  vocab.save(workdir / 'item_vocab.npz')  # the run's own file restores again
  assert analysis.load_run(str(workdir), device='cpu').vocab.size == vocab.size
