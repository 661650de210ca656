"""HRNN (Quadrana et al., RecSys 2017): GRU4Rec with a user-level GRU across sessions, in NNX.

The session level is GRU4Rec itself (`HRNN` subclasses `GRU4Rec`: the same item tables, input
modes, stacked `GRUCell`s, dropout and the `input_rows` / `output_rows` / `score_rows` /
`score_all` interface, so losses, the row-sparse optimiser and the evaluators are shared). On top
of it sit a user-level `GRUCell(H_last -> U)` and the session initialisation
`s0 = tanh(c @ init_w + init_b)` from the user state c.

The timing follows hgru4rec (mquad/hgru4rec, `src/hgru4rec.py`, `HGRU4Rec.model`), driven per
slot by the `session_start` / `user_start` flags of the user-parallel schedule:

* At a user start both the user state and every session layer are zero (not `tanh(init_b)`).
* At any other session start, in that same step, the user GRU takes one step with the carried
  top-layer session state as input, which is the previous session's final state (the state after
  its last (input, target) pair; a session's last item is only ever a target). Then the first
  session layer is set to `s0` of the new user state. The item of the step then runs through the
  session GRU as in GRU4Rec, so this step's loss reaches the user GRU and the initialisation.
  (hgru4rec computes the same thing: the user GRU "updates lazily", at the next session's start,
  from the session state it still holds.)
* Everywhere else the user state is carried unchanged.
* With several session layers, only the first is initialised from the user state; the upper
  layers carry over from the previous session of the same user and are zeroed at user starts
  only, as in hgru4rec. (The paper has one session layer.)
* Variant `all`: the user state is also fed to the first session layer at every step (GRU4Rec's
  `context_features`). With one-hot input (hgru4rec's, and the HRNN configs') it enters the
  reset and update gates only, as hgru4rec adds it (`Wu_to_s`, whose candidate block it never
  uses). With an embedding input it is concatenated to the item's row, so it enters all three
  gates, as the paper's concatenation reads. Variant `init`: it only initialises the session.

Dropout (hgru4rec's names in brackets): `dropout_p_embed` on the input embedding and
`dropout_p_hidden` [dropout_p_hidden_ses] on every session layer's output, as GRU4Rec (in one-hot
mode, hgru4rec's, the first session layer's output is dropped with `dropout_p_embed`, as in
GRU4Rec, so the configs set both fields to hgru4rec's session dropout);
`dropout_p_user` [dropout_p_hidden_usr] on the user GRU's output, which is the carried user
state (its input, the carried session state, already holds the session dropout); `dropout_p_init`
on the initialisation `s0`. Carried states are the dropped-out values, as in hgru4rec and GRU4Rec.

The GRU cells are `GRUCell`s (torch's gate formulation), not hgru4rec's Theano GRU, whose reset
gate multiplies the state before the recurrent product.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from seqrec.models.gru4rec import GRU4Rec, GRUCell, Hidden, dropout, glorot_blocks

USER_PROPAGATION_MODES = ('init', 'all')


class HRNN(GRU4Rec):
  """HRNN over a catalogue of `n_items` items.

  Args:
    n_items: catalogue size N.
    layers: session GRU layer sizes, e.g. (100,).
    user_units: size U of the user GRU.
    user_propagation_mode: 'init' (the user state initialises each session) or 'all' (it is also
      fed to the first session layer at every step).
    embedding: size of a separate input embedding; 0 for none.
    constrained_embedding: share the output table as the input embedding (takes precedence).
    dropout_p_embed: dropout on the input embedding.
    dropout_p_hidden: dropout on each session layer's output.
    dropout_p_user: dropout on the user GRU's output (the carried user state).
    dropout_p_init: dropout on the session initialisation `s0`.
    rngs: parameter RNG.

  Raises:
    ValueError: on an unknown `user_propagation_mode` or a non-positive `user_units`.
  """

  def __init__(
    self,
    n_items: int,
    layers: tuple[int, ...] = (100,),
    user_units: int = 100,
    user_propagation_mode: str = 'init',
    embedding: int = 0,
    constrained_embedding: bool = True,
    dropout_p_embed: float = 0.0,
    dropout_p_hidden: float = 0.0,
    dropout_p_user: float = 0.0,
    dropout_p_init: float = 0.0,
    *,
    rngs: nnx.Rngs,
  ):
    if user_propagation_mode not in USER_PROPAGATION_MODES:
      raise ValueError(
        f'unknown user_propagation_mode {user_propagation_mode!r}; valid modes: '
        f'{", ".join(USER_PROPAGATION_MODES)}'
      )
    if user_units < 1:
      raise ValueError(f'user_units must be positive, got {user_units}')
    super().__init__(
      n_items,
      layers,
      embedding,
      constrained_embedding,
      dropout_p_embed,
      dropout_p_hidden,
      context_features=user_units if user_propagation_mode == 'all' else 0,
      rngs=rngs,
    )
    self.user_units = int(user_units)
    self.user_propagation_mode = user_propagation_mode
    self.dropout_p_user = float(dropout_p_user)
    self.dropout_p_init = float(dropout_p_init)
    self.user_cell = GRUCell(self.layers[-1], self.user_units, rngs=rngs)
    self.init_w = nnx.Param(glorot_blocks(rngs.params(), self.user_units, self.layers[0], 1))
    self.init_b = nnx.Param(jnp.zeros((self.layers[0],), jnp.float32))

  def init_user_hidden(self, batch_size: int) -> jax.Array:
    """[B, U] zero user states."""
    return jnp.zeros((batch_size, self.user_units), jnp.float32)

  # -- Forward --------------------------------------------------------------------------------

  def begin_sessions(
    self,
    hidden: Hidden,
    user_hidden: jax.Array,
    session_start: jax.Array,
    user_start: jax.Array,
    key: jax.Array | None = None,
  ) -> tuple[Hidden, jax.Array]:
    """The hierarchical part of a step: user GRU update and session initialisation.

    Args:
      hidden: carried session states (as the previous step left them), each [B, H_l].
      user_hidden: [B, U] carried user state.
      session_start: [B] bool, the slot's step is the first pair of a session.
      user_start: [B] bool, ... of a user's first session (implies `session_start`).
      key: dropout key; None for evaluation.

    Returns:
      (session states to run this step's item from, user state of this step).
    """
    key_user, key_init = (None, None) if key is None else tuple(jax.random.split(key))
    session_start = session_start[:, None]  # [B, 1]
    user_start = user_start[:, None]  # [B, 1]
    updated = self.user_cell(hidden[-1], user_hidden)  # [B, U]
    updated = dropout(updated, self.dropout_p_user, key_user)
    user_hidden = jnp.where(user_start, 0.0, jnp.where(session_start, updated, user_hidden))
    s0 = jnp.tanh(user_hidden @ self.init_w[...] + self.init_b[...])  # [B, H0]
    s0 = dropout(s0, self.dropout_p_init, key_init)
    first = jnp.where(session_start, s0, hidden[0])
    hidden = tuple(jnp.where(user_start, 0.0, h) for h in (first, *hidden[1:]))
    return hidden, user_hidden

  def user_step(
    self,
    in_rows: jax.Array,
    hidden: Hidden,
    user_hidden: jax.Array,
    session_start: jax.Array,
    user_start: jax.Array,
    key: jax.Array | None = None,
  ) -> tuple[jax.Array, Hidden, jax.Array]:
    """One event for every slot of a user-parallel batch.

    Args:
      in_rows: [B, D_in] rows of the input table for the current items.
      hidden: carried session states, each [B, H_l] (not reset by the caller).
      user_hidden: [B, U] carried user state.
      session_start: [B] bool flags of the schedule.
      user_start: [B] bool flags of the schedule.
      key: dropout key; None for evaluation.

    Returns:
      (out [B, H_last] final representation, new session states, new user state).
    """
    key_session, key_user = (None, None) if key is None else tuple(jax.random.split(key))
    hidden, user_hidden = self.begin_sessions(
      hidden, user_hidden, session_start, user_start, key_user
    )
    context = user_hidden if self.user_propagation_mode == 'all' else None
    out, hidden = self.step(in_rows, hidden, key_session, context=context)
    return out, hidden, user_hidden

  def user_encode(
    self,
    items: jax.Array,
    hidden: Hidden,
    user_hidden: jax.Array,
    session_start: jax.Array,
    user_start: jax.Array,
  ) -> tuple[jax.Array, Hidden, jax.Array]:
    """Evaluation step from [B] item ids: `user_step` without dropout."""
    return self.user_step(self.input_rows(items), hidden, user_hidden, session_start, user_start)
