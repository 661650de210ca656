"""Restores a finished or interrupted run for analysis: scores, top-k, embeddings, neighbours."""

import dataclasses
import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from seqrec import checkpointing, train_step, user_train_step
from seqrec.data import ItemVocab
from seqrec.models import build_model
from seqrec.models.attention import MultiHeadAttention
from seqrec.models.gru4rec import ItemTable
from seqrec.models.hrnn import HRNN
from seqrec.models.sequential import SEQUENCE_MODELS, history_length


@dataclasses.dataclass
class Run:
  """A trained model with its config and item vocabulary.

  Item arguments and results use the dataset's raw item ids (as in the input files); dense ids
  are the model's row numbers.
  """

  model: nnx.Module
  config: ml_collections.ConfigDict
  vocab: ItemVocab
  workdir: str

  def dense_ids(self, items) -> np.ndarray:
    """Raw ids -> dense ids; raises KeyError naming ids the training data never had."""
    items = _id_list(items)
    if not items:
      return np.zeros(0, np.int32)
    raw = np.asarray(items)
    if raw.dtype.kind not in 'iuUS' and raw.size:  # e.g. 214536502.0: refused, never truncated
      raise KeyError(f'item ids {items!r} are not ids: expected integers or strings')
    if raw.dtype.kind in 'iu' and self.vocab.ids.dtype.kind in 'US':
      raw = raw.astype(str)
    elif raw.dtype.kind in 'US' and self.vocab.ids.dtype.kind in 'iu':
      try:
        raw = raw.astype(np.int64)
      except ValueError:
        raise KeyError(f'item ids {items!r} are not integers; this run has integer ids') from None
    dense = self.vocab.encode(raw)
    if (dense < 0).any():
      unknown = raw[dense < 0].tolist()
      raise KeyError(f'items {unknown} are not in the training data of {self.workdir}')
    return dense

  def encode_session(self, items, history=None) -> jax.Array:
    """Feeds a session prefix (raw ids, oldest first) from a zero state; returns the [D] output.

    Args:
      items: the current session's items so far, oldest first.
      history: HRNN only: the user's earlier sessions (each a list of raw ids, oldest session
        first). They are walked as in training and evaluation (a session's last item is only a
        target), building the user state that initialises the current session.

    Raises:
      ValueError: on an empty prefix, or a history for a model without a user level.
    """
    items = _id_list(items)
    if not items:
      raise ValueError('encode_session needs at least one item')
    dense = jnp.asarray(self.dense_ids(items), jnp.int32)
    history = _sessions(history) if history is not None else []
    if not history:
      if isinstance(self.model, HRNN):  # a user with no history: both states start at zero
        flags = jnp.zeros(dense.shape, bool).at[0].set(True)
        return _encode_user_prefix(self.model, dense, flags, flags)
      return _encode_prefix(self.model, dense)
    if not isinstance(self.model, HRNN):
      raise ValueError(f'{self.config.model} has no user state: call without history')
    inputs, starts = [], []
    for session in history:
      session_items = self.dense_ids(session)
      if len(session_items) >= 2:  # a shorter session has no pair to walk
        inputs.append(session_items[:-1])
        starts.append(np.arange(len(session_items) - 1) == 0)
    inputs.append(np.asarray(dense))
    starts.append(np.arange(dense.size) == 0)
    session_start = np.concatenate(starts)
    user_start = np.zeros_like(session_start)
    user_start[0] = True
    return _encode_user_prefix(
      self.model,
      jnp.asarray(np.concatenate(inputs), jnp.int32),
      jnp.asarray(session_start),
      jnp.asarray(user_start),
    )

  def score_session(self, items, history=None) -> np.ndarray:
    """[N] scores of every item as the next one after the prefix `items` (dense id order)."""
    out = self.encode_session(items, history)
    return np.array(self.model.score_all(out[None, :])[0])  # a writable copy

  def top_k(self, items, k: int = 20, exclude_seen: bool = False, history=None) -> list[tuple]:
    """The k best next items after the prefix as `(raw_id, score)`, best first."""
    _check_k(k)
    scores = self.score_session(items, history)
    excluded = self.dense_ids(items) if exclude_seen else np.zeros(0, np.int32)
    best = _best(scores, excluded, k)  # fewer than k when fewer items remain
    return [(self.vocab.decode(np.array([i]))[0].item(), float(scores[i])) for i in best]

  def item_embeddings(self) -> np.ndarray:
    """[N, D] output item table (also the input embedding with constrained embedding)."""
    return np.asarray(self.model.item_out[...])

  def nearest_items(self, item, k: int = 10) -> list[tuple]:
    """The k items closest to `item` by cosine similarity in the item table, `(raw_id, cos)`."""
    emb = self.item_embeddings()
    norm = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    _check_k(k)
    i = int(self.dense_ids([item])[0])
    sims = norm @ norm[i]
    sims[i] = -np.inf
    best = np.argsort(-sims, kind='stable')[: min(k, len(emb) - 1)]  # never the item itself
    return [(self.vocab.decode(np.array([j]))[0].item(), float(sims[j])) for j in best]


def _check_k(k) -> None:
  """Refuses a list length that is not a positive integer (a negative slice would drop items)."""
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f'k={k!r}: expected a positive integer')


def _best(scores: np.ndarray, excluded: np.ndarray, k: int) -> np.ndarray:
  """The (at most) k best dense ids by score, best first, ties by id, none of `excluded`."""
  allowed = np.ones(len(scores), bool)
  allowed[excluded] = False
  order = np.argsort(-scores, kind='stable')  # [N]
  return order[allowed[order]][:k]


def _id_list(items, what: str = 'items') -> list:
  """`items` as a list of single raw ids, oldest first.

  Raises:
    TypeError: for a string (which would be read character by character), a single id, or a
      nested list, naming what was given.
  """
  if isinstance(items, np.ndarray) and items.ndim == 1:
    items = items.tolist()
  if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple, range)):
    raise TypeError(
      f'{what}: expected a list of item ids, oldest first, got {type(items).__name__} {items!r}'
    )
  nested = [i for i in items if isinstance(i, (list, tuple, range, np.ndarray))]
  if nested:
    raise TypeError(f'{what}: expected single item ids, got the list {nested[0]!r} among them')
  return list(items)


def _sessions(history) -> list[list]:
  """HRNN's `history=`: a list of earlier sessions, each a list of raw ids (empty ones kept:
  like one-item sessions, they have no pair to walk).

  Raises:
    TypeError: when `history` is not a list of id lists (e.g. a flat list of ids).
  """
  if isinstance(history, np.ndarray):
    history = list(history)
  if isinstance(history, (str, bytes)) or not isinstance(history, (list, tuple)):
    raise TypeError(
      f'history: expected a list of sessions (each a list of item ids), got '
      f'{type(history).__name__} {history!r}'
    )
  flat = [s for s in history if not isinstance(s, (list, tuple, range, np.ndarray))]
  if flat:
    raise TypeError(
      f'history: expected a list of sessions (each a list of item ids), got {flat[0]!r} among '
      'them; wrap a single session as [[...]]'
    )
  return [_id_list(session, 'a history session') for session in history]


@nnx.jit
def _encode_prefix(model, dense: jax.Array) -> jax.Array:
  def body(hidden, item):
    out, hidden = model.encode(item[None], hidden)
    return hidden, out[0]

  _, outs = jax.lax.scan(body, model.init_hidden(1), dense)
  return outs[-1]


@nnx.jit
def _encode_user_prefix(
  model, dense: jax.Array, session_start: jax.Array, user_start: jax.Array
) -> jax.Array:
  """HRNN's output after walking `[T]` inputs with their session/user start flags."""

  def body(carry, step):
    hidden, user_hidden = carry
    item, s_start, u_start = step
    out, hidden, user_hidden = model.user_encode(
      item[None], hidden, user_hidden, s_start[None], u_start[None]
    )
    return (hidden, user_hidden), out[0]

  init = (model.init_hidden(1), model.init_user_hidden(1))
  _, outs = jax.lax.scan(body, init, (dense, session_start, user_start))
  return outs[-1]


class AttentionMaps(NamedTuple):
  """Self-attention weights of one history (`SequenceRun.attention`)."""

  probs: np.ndarray  # [n_blocks, n_heads, T, T]: query position x key position
  items: list  # [T] raw item id at each position (None: BERT4Rec's mask token)


def _as_id(value, like, what: str):
  """`value` as an id of the same Python type as `like` (a raw id of the run's data).

  Integer ids take ints and digit strings ('1193'); a float, even 1193.0, is refused rather than
  truncated, so a wrong column never maps silently onto some other item.

  Raises:
    KeyError: naming the value, when it is not an id of that type.
  """
  if isinstance(like, str):
    return str(value)
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return int(value)
  if isinstance(value, str) and value.strip().lstrip('-').isdigit():
    return int(value)
  raise KeyError(f'{what} id {value!r} is not an integer; this run has integer {what} ids')


# User-sequence models whose scores depend on the user (Caser's user embedding, TransRec's
# per-user translation).
_PER_USER_MODELS = ('caser', 'transrec')


@dataclasses.dataclass
class SequenceRun:
  """A trained user-sequence model (SASRec, BERT4Rec, Caser, TransRec) with its ids.

  Items are given and returned as raw ids (as in the input file); users as raw user ids (Caser
  and TransRec have per-user parameters and need `user=`; SASRec and BERT4Rec ignore the user).
  """

  model: nnx.Module
  config: ml_collections.ConfigDict
  item_ids: np.ndarray  # [N+1] raw item id of each dense id (entry 0 unused)
  user_ids: np.ndarray  # [U] raw user ids
  workdir: str

  def dense_items(self, items) -> np.ndarray:
    """Raw item ids -> dense ids 1..N; raises KeyError naming unknown ids."""
    lookup = {raw: i for i, raw in enumerate(self.item_ids.tolist()) if i > 0}
    raw = [_as_id(i, self.item_ids[1].item(), 'item') for i in _id_list(items)]
    unknown = [i for i in raw if i not in lookup]
    if unknown:
      raise KeyError(f'items {unknown} are not in the data of {self.workdir}')
    return np.array([lookup[i] for i in raw], np.int32)

  def _history(self, items) -> np.ndarray:
    """[1, W] the left-padded window of dense ids the model reads for `items` (oldest first)."""
    dense = self.dense_items(items)
    if not dense.size:
      raise ValueError('a history needs at least one item: the model predicts what follows it')
    width = history_length(self.config)
    history = np.zeros((1, width), np.int32)
    kept = dense[-width:]
    if kept.size:
      history[0, width - kept.size :] = kept
    return history

  def _user_index(self, user) -> int:
    if user is None:
      if self.config.model in _PER_USER_MODELS:
        raise ValueError(
          f'{self.config.model} has per-user parameters: pass user= (a raw user id of '
          f'{self.workdir}, e.g. user={self.user_ids[0].item()!r})'
        )
      return 0  # SASRec and BERT4Rec read no user
    matches = np.nonzero(self.user_ids == _as_id(user, self.user_ids[0].item(), 'user'))[0]
    if not matches.size:
      raise KeyError(f'user {user!r} is not in the data of {self.workdir}')
    return int(matches[0])

  def score_history(self, items, user=None) -> np.ndarray:
    """[N+1] scores of every dense id as the user's next item after `items` (oldest first).

    Entry 0 (padding) is -inf.
    """
    history = self._history(items)
    users = jnp.asarray([self._user_index(user)], jnp.int32)
    query = self.model.encode_last(jnp.asarray(history), users)
    scores = np.array(self.model.score_catalog(query)[0], np.float32)
    scores[0] = -np.inf
    return scores

  def top_k(self, items, k: int = 10, exclude_seen: bool = False, user=None) -> list[tuple]:
    """The k best next items as `(raw_id, score)`, best first."""
    _check_k(k)
    scores = self.score_history(items, user)
    seen = self.dense_items(items) if exclude_seen else np.zeros(0, np.int32)
    best = _best(scores, np.concatenate([[0], seen]), k)  # never padding; fewer when exhausted
    return [(self.item_ids[i].item(), float(scores[i])) for i in best]

  def attention(self, items) -> AttentionMaps:
    """The attention weights of every block and head while the model reads `items`.

    This is the view of the SASRec paper's attention heat maps. The model reads the window it
    ranks the next item from. For SASRec that is the last `max_len` items. BERT4Rec drops the
    oldest of those and appends its mask token, whose row is the one that predicts.

    Args:
      items: the history as raw ids, oldest first.

    Returns:
      `AttentionMaps`: `probs` [n_blocks, n_heads, T, T] (each row, a query position, sums to 1
      over the keys it may see) and `items`, the T raw ids of the positions (None for BERT4Rec's
      mask token). Padding positions are left out.

    Raises:
      ValueError: for a model without self-attention (Caser, TransRec).
    """
    if self.config.model not in ('sasrec', 'bert4rec'):
      raise ValueError(
        f'{self.workdir} holds a {self.config.model} model; attention maps exist for sasrec '
        'and bert4rec'
      )
    history = self._history(items)  # [1, max_len]
    if self.config.model == 'bert4rec':  # the window `encode_last` reads
      history = np.concatenate([history[:, 1:], [[self.model.mask_token]]], axis=1)
    modules = [m for _, m in nnx.iter_modules(self.model) if isinstance(m, MultiHeadAttention)]
    for module in modules:
      module.record_probs = True
    try:
      _, sown = nnx.capture(self.model.encode, nnx.Intermediate)(jnp.asarray(history))
    finally:
      for module in modules:
        module.record_probs = False
    maps = [value for _, value in sorted(nnx.to_flat_state(sown), key=lambda kv: kv[0])]
    probs = np.stack([np.asarray(m.get_value()[0][0]) for m in maps])  # [blocks, H, W, W]
    kept = history[0] > 0
    dense = history[0][kept]
    raw = [self.item_ids[d].item() if d < len(self.item_ids) else None for d in dense]
    return AttentionMaps(probs=probs[:, :, kept][:, :, :, kept], items=raw)

  def item_embeddings(self) -> np.ndarray:
    """[N+1, D] the vectors the model scores items with, by dense id (row 0: padding).

    SASRec: its output table (the input table unless a separate one exists); BERT4Rec: the
    shared item table without the mask token; Caser: the output table (its biases apart);
    TransRec: the item points in the translation space.
    """
    return np.asarray(self.model.item_vectors())

  def nearest_items(self, item, k: int = 10) -> list[tuple]:
    """The k items closest to `item` in the space the model scores them in.

    Returns:
      `(raw_id, similarity)` best first: cosine similarity for the inner-product models
      (SASRec, BERT4Rec, Caser); for TransRec, whose scores fall with distance,
      `(raw_id, euclidean_distance)`, nearest first.
    """
    _check_k(k)
    emb = self.item_embeddings()
    i = int(self.dense_items([item])[0])
    if self.config.model == 'transrec':
      closeness = -np.linalg.norm(emb - emb[i], axis=1)
    else:
      norm = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
      closeness = norm @ norm[i]
    closeness[[0, i]] = -np.inf  # neither the padding row nor the item itself
    best = np.argsort(-closeness, kind='stable')[: min(k, len(emb) - 2)]
    sign = -1.0 if self.config.model == 'transrec' else 1.0
    return [(self.item_ids[j].item(), sign * float(closeness[j])) for j in best]


def _checkpoint_meta(ckpts: checkpointing.RunCheckpoints) -> dict:
  """The meta of the checkpoint `load_run` restores (best, else latest); {} when there is none."""
  return ckpts.restore_meta('best') or ckpts.restore_meta('latest') or {}


def _id_file_mismatch(
  workdir: str, name: str, detail: str
) -> checkpointing.CheckpointMismatchError:
  return checkpointing.CheckpointMismatchError(
    f'{os.path.join(workdir, name)} does not belong to the checkpoint in {workdir} ({detail}): '
    'its rows would name the wrong items. Restore the file the run wrote, or retrain.'
  )


def _check_sequence_ids(workdir: str, meta: dict, item_ids, user_ids) -> None:
  """Refuses an `ids.npz` that is not the one the checkpoint was trained with."""
  from seqrec import seq_train  # noqa: PLC0415 (imports jax-heavy training code)

  fp = meta.get('fingerprint', {})
  sizes = {'n_items': len(item_ids) - 1, 'n_users': len(user_ids)}
  for key, size in sizes.items():
    if key in fp and fp[key] != size:
      raise _id_file_mismatch(workdir, 'ids.npz', f'{key} {size}, the checkpoint: {fp[key]}')
  saved = meta.get('ids_sha256')  # absent in runs saved before it was kept
  if saved is not None and saved != seq_train.ids_digest(item_ids, user_ids):
    raise _id_file_mismatch(workdir, 'ids.npz', 'its ids differ from those the run trained on')


def load_sequence_run(workdir: str, config: ml_collections.ConfigDict, target) -> SequenceRun:
  """Restores the best (else the latest) parameters of a `seqrec.seq_train` run."""
  from seqrec import seq_train, seq_train_step  # noqa: PLC0415 (imports jax-heavy training code)

  ids = np.load(os.path.join(workdir, 'ids.npz'), allow_pickle=False)
  item_ids, user_ids = ids['item_ids'], ids['user_ids']
  with jax.default_device(target):
    ckpts = checkpointing.RunCheckpoints(workdir)
    try:
      _check_sequence_ids(workdir, _checkpoint_meta(ckpts), item_ids, user_ids)
      model = seq_train.build_model(config, len(item_ids) - 1, len(user_ids))
      graphdef, params, others = nnx.split(model, nnx.Param, ...)
      restored = ckpts.restore('best', params)
      if restored is None:
        step_cfg = seq_train_step.step_config(config, len(item_ids) - 1)
        tx = seq_train_step.make_optimizer(step_cfg)
        template = seq_train_step.init_state(model, tx, int(config.seed))
        restored = ckpts.restore('latest', template)
        if restored is None:
          raise FileNotFoundError(f'{workdir} has no checkpoint yet')
        params = restored[0].params
      else:
        params = restored[0]
    finally:
      ckpts.close()
    model = nnx.merge(graphdef, jax.device_put(params, target), others)
  return SequenceRun(model, config, item_ids, user_ids, workdir)


def load_run(workdir: str, device: str | None = None) -> Run | SequenceRun:
  """Restores the best (else the latest) parameters of the run in `workdir`.

  Args:
    workdir: a `--workdir` of `seqrec.main`.
    device: 'cpu', 'gpu', 'tpu' or None for JAX's default device.

  Returns:
    A `Run` (GRU4Rec, HRNN), or a `SequenceRun` for a user-sequence model (SASRec & co.).

  Raises:
    FileNotFoundError: when `workdir` holds no run or no checkpoint.
    seqrec.checkpointing.CheckpointMismatchError: when the workdir's item (and user) id file is
      not the one its checkpoint was trained with, e.g. copied from another run.
  """
  config_path = os.path.join(workdir, 'config.json')
  if not os.path.exists(config_path):
    raise FileNotFoundError(f'{config_path} not found: {workdir} is not a seqrec run directory')
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  target = jax.devices(device)[0] if device else jax.devices()[0]
  if config.model in SEQUENCE_MODELS:
    return load_sequence_run(workdir, config, target)
  vocab = ItemVocab.load(os.path.join(workdir, 'item_vocab.npz'))
  with jax.default_device(target):
    ckpts = checkpointing.RunCheckpoints(workdir)
    try:
      saved = _checkpoint_meta(ckpts).get('fingerprint', {}).get('vocab_sha256')
      if saved is not None and saved != vocab.digest():
        raise _id_file_mismatch(
          workdir, 'item_vocab.npz', f"{vocab.size} ids whose digest differs from the run's"
        )
      model = build_model(config, vocab.size, seed=int(config.seed))
      graphdef, tables, dense = nnx.split(model, ItemTable, nnx.Param)
      restored = ckpts.restore('best', {'tables': tables, 'dense': dense})
      if restored is not None:
        params = restored[0]
      else:
        # The training state's own structure: HRNN's also carries the user-level hidden state.
        init_state = (
          user_train_step.init_user_train_state
          if config.model == 'hrnn'
          else train_step.init_train_state
        )
        template = init_state(
          model, int(config.batch_size), float(config.momentum), jax.random.PRNGKey(0)
        )
        restored = ckpts.restore('latest', template)
        if restored is None:
          raise FileNotFoundError(f'{workdir} has no checkpoint yet')
        params = {'tables': restored[0].tables, 'dense': restored[0].dense}
    finally:
      ckpts.close()
    params = jax.device_put(params, target)
    model = nnx.merge(graphdef, params['tables'], params['dense'])
  return Run(model=model, config=config, vocab=vocab, workdir=workdir)
