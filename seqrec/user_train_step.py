"""The jitted user-parallel update of HRNN, scanned over chunks of steps.

One step is `train_step`'s (shared negatives, loss, dense and row-sparse Adagrad with momentum,
inactive steps as no-ops: the same `train_step.make_step_core`), run on a user-parallel batch
(`seqrec.data.user_parallel`): the model itself applies the schedule's `session_start` /
`user_start` flags (`HRNN.user_step`), and the state carries the user state beside the session
state. Both are carried to the next step without gradient, as hgru4rec keeps them in shared
variables: the loss of a session-start step reaches the user GRU and the initialisation weights
through that step's user update, and no earlier step.
"""

import dataclasses
from collections.abc import Callable

import jax
from flax import nnx

from seqrec.models.hrnn import HRNN
from seqrec.train_step import StepConfig, TrainState, init_train_state, make_step_core, scan_chunk

# The `[T, B]` schedule arrays one update reads (others, e.g. `evaluate`, may ride along unused).
BATCH_KEYS = ('inputs', 'targets', 'valid', 'session_start', 'user_start')


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class UserTrainState(TrainState):
  """A `TrainState` that also carries the user state of every slot."""

  user_hidden: jax.Array  # [B, U]


def init_user_train_state(
  model: HRNN, batch_size: int, momentum: float, rng: jax.Array
) -> UserTrainState:
  """Zero optimiser state, zero session and user states for `batch_size` slots."""
  state = init_train_state(model, batch_size, momentum, rng)
  fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
  return UserTrainState(**fields, user_hidden=model.init_user_hidden(batch_size))


def make_user_update_fn(
  graphdef: nnx.GraphDef, cfg: StepConfig, item_counts: jax.Array
) -> Callable:
  """Builds the pure one-step `update(state, batch) -> (state, [loss_sum, n_valid])`.

  `batch` holds one step's `[B]` entries of the user-parallel schedule (`BATCH_KEYS`).
  """
  core = make_step_core(graphdef, cfg, item_counts)

  def update(state: UserTrainState, batch: dict[str, jax.Array]):
    def forward(net, in_rows, key):
      out, hidden, user_hidden = net.user_step(
        in_rows, state.hidden, state.user_hidden, batch['session_start'], batch['user_start'], key
      )
      return out, (hidden, user_hidden)

    params, (hidden, user_hidden), stats = core(state, batch, forward)
    new_state = dataclasses.replace(
      state, step=state.step + 1, hidden=hidden, user_hidden=user_hidden, **params
    )
    return new_state, stats

  return update


def make_user_train_chunk(
  graphdef: nnx.GraphDef,
  cfg: StepConfig,
  item_counts: jax.Array,
  steps_per_call: int,
  unroll: int = 1,
) -> Callable:
  """Builds `train_chunk(state, schedule_arrays, start) -> (state, stats)`, jitted, donating state.

  As `train_step.make_train_chunk`, over the `[T, B]` arrays of a `UserSchedule` (`arrays()`).
  """
  return scan_chunk(make_user_update_fn(graphdef, cfg, item_counts), steps_per_call, unroll)
