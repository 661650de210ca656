"""Plain re-implementations of GRU4Rec's forward pass and optimiser, written from the equations."""

import numpy as np


def sigmoid(xp, x):
  """Logistic function in the array namespace `xp` (numpy or jax.numpy)."""
  return 1.0 / (1.0 + xp.exp(-x))


def gru_cell(xp, params, x, h):
  """torch.nn.GRUCell with weights stored input-major, gate blocks (reset, update, new).

  Args:
    xp: numpy or jax.numpy.
    params: dict with `w_ih` [In, 3H], `w_hh` [H, 3H], `b_ih` [3H], `b_hh` [3H].
    x: [B, In] input.
    h: [B, H] previous state.

  Returns:
    [B, H] new state `(1 - z) * n + z * h`.
  """
  units = h.shape[-1]
  gate = lambda name, k: params[name][..., k * units : (k + 1) * units]
  r = sigmoid(xp, x @ gate('w_ih', 0) + gate('b_ih', 0) + h @ gate('w_hh', 0) + gate('b_hh', 0))
  z = sigmoid(xp, x @ gate('w_ih', 1) + gate('b_ih', 1) + h @ gate('w_hh', 1) + gate('b_hh', 1))
  n = xp.tanh(x @ gate('w_ih', 2) + gate('b_ih', 2) + r * (h @ gate('w_hh', 2) + gate('b_hh', 2)))
  return (1.0 - z) * n + z * h


def gru_embedding(xp, w_x, w_h, bias, onehot, h):
  """The official one-hot GRUEmbedding layer (gate blocks x, r, z).

  Args:
    xp: numpy or jax.numpy.
    w_x: [N, 3H] input weights (one row per item).
    w_h: [H, 3H] recurrent weights.
    bias: [3H].
    onehot: [B, N] one-hot encoding of the input items.
    h: [B, H] previous state.

  Returns:
    [B, H] new state `(1 - z) * h + z * tanh(r * vh_x + vx_x)`.
  """
  units = h.shape[-1]
  vx = onehot @ w_x + bias  # [B, 3H]
  vh = h @ w_h  # [B, 3H]
  block = lambda v, k: v[:, k * units : (k + 1) * units]
  r = sigmoid(xp, block(vx, 1) + block(vh, 1))
  z = sigmoid(xp, block(vx, 2) + block(vh, 2))
  cand = xp.tanh(r * block(vh, 0) + block(vx, 0))
  return (1.0 - z) * h + z * cand


def forward(xp, params, mode, items, hidden, scales=None):
  """One GRU4Rec step for every slot.

  Args:
    xp: numpy or jax.numpy.
    params: nested dict of all parameters (the module's pure state dict: `item_out`,
      `item_bias`, optionally `item_in`, `cells`, `onehot_w_hh`, `onehot_b`).
    mode: 'constrained', 'separate' or 'onehot'.
    items: [B] input item ids.
    hidden: per-layer [B, H_l] states.
    scales: optional dropout multipliers (0 or 1/(1-p)): [0] for the embedding (the first
      layer's output in one-hot mode), [1 + j] for the j-th GRUCell's output.

  Returns:
    (out [B, H_last], new per-layer states), the dropped-out output of a layer being its state.
  """
  drop = (lambda x, _: x) if scales is None else (lambda x, i: x * scales[i])
  new_hidden = []
  if mode == 'onehot':
    n_items = params['item_in'].shape[0]
    onehot = xp.eye(n_items, dtype=params['item_in'].dtype)[items]  # [B, N]
    x = gru_embedding(
      xp, params['item_in'], params['onehot_w_hh'], params['onehot_b'], onehot, hidden[0]
    )
    x = drop(x, 0)
    new_hidden.append(x)
  else:
    table = params['item_out'] if mode == 'constrained' else params['item_in']
    x = drop(table[items], 0)
  first = len(new_hidden)
  cells = params.get('cells', {})  # absent for a single one-hot layer
  for j in range(len(cells)):
    x = drop(gru_cell(xp, cells[j], x, hidden[first + j]), 1 + j)
    new_hidden.append(x)
  return x, new_hidden


def scores(params, out, cols):
  """[B, D] representations x output columns `cols` -> [B, K] scores `out Wy[cols]^T + By[cols]`."""
  return out @ params['item_out'][cols].T + params['item_bias'][cols]


class IndexedAdagradM:
  """The official IndexedAdagradM (momentum > 0) in numpy float64, on parameters named by string.

  Dense parameters take the update everywhere. A sparse (embedding) parameter takes it only on
  the distinct rows looked up in the step, with the summed gradient of each such row; a looked-up
  row whose gradient is zero still moves by its momentum, and every other row keeps its value,
  accumulator and momentum.
  """

  def __init__(self, params, learning_rate, momentum, eps=1e-6):
    """Zero state for `params`, a dict name -> array."""
    self.lr, self.momentum, self.eps = learning_rate, momentum, eps
    self.acc = {name: np.zeros(np.shape(p), np.float64) for name, p in params.items()}
    self.mom = {name: np.zeros(np.shape(p), np.float64) for name, p in params.items()}

  def dense_step(self, name, param, grad):
    """Returns the updated dense parameter."""
    acc, mom = self.acc[name], self.mom[name]
    acc += np.square(grad)
    mom *= self.momentum
    mom -= self.lr * grad / np.sqrt(acc + self.eps)
    return param + mom

  def sparse_step(self, name, param, rows, grad):
    """Returns the table after a step on the distinct `rows`; `grad` is the full-table gradient."""
    acc, mom = self.acc[name], self.mom[name]
    g = grad[rows]
    acc[rows] += np.square(g)
    mom[rows] = self.momentum * mom[rows] - self.lr * g / np.sqrt(acc[rows] + self.eps)
    param = param.copy()
    param[rows] += mom[rows]
    return param
