"""Data parallelism over a device mesh: batch slots split across devices, parameters replicated.

Session-parallel slots are independent except through the shared output set and the parameter
update, so the `[T, B]` schedule and the `[B, H]` hidden state are split along B over a 1-D
`('data',)` mesh while parameters and optimiser state are replicated. XLA's SPMD partitioner
inserts the collectives (gathering the batch's targets into the output set, summing gradients),
so the numbers are those of one device up to the order of floating-point sums. The user-sequence
models (SASRec & co., `seq_train`) split each batch's rows the same way: their `[S, B]` batch
indices are split along B, the examples and the train state replicated.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def mesh_size(num_devices: int, batch_size: int, n_visible: int, platform: str = '') -> int:
  """The number of devices `--config.num_devices` asks for (0: all visible ones), checked.

  Args:
    num_devices: the flag's value.
    batch_size: B, which the devices split evenly.
    n_visible: how many local devices there are.
    platform: their platform, for the error message.

  Raises:
    ValueError: naming the flag at fault, the device count first: a negative count, more devices
      than are visible, or a B that the devices cannot split evenly.
  """
  if num_devices < 0:
    raise ValueError(
      f'--config.num_devices={num_devices}: expected 0 (all local devices) or a number of devices'
    )
  n = n_visible if num_devices == 0 else num_devices
  if n > n_visible:
    raise ValueError(
      f'--config.num_devices={num_devices}: only {n_visible} {platform} device(s) are visible'
    )
  if n > 1 and batch_size % n:
    raise ValueError(
      f'--config.batch_size={batch_size}: expected a multiple of --config.num_devices={n} (each '
      'device takes an equal share)'
    )
  return n


def make_mesh(num_devices: int, batch_size: int) -> Mesh | None:
  """A 1-D data mesh over `num_devices` local devices (0: all of them), or None for one device.

  Raises:
    ValueError: from `mesh_size`.
  """
  devices = jax.local_devices()
  n = mesh_size(num_devices, batch_size, len(devices), devices[0].platform)
  if n <= 1:
    return None
  return Mesh(np.array(devices[:n]), (DATA_AXIS,))


def shard_schedule(arrays: dict, mesh: Mesh | None) -> dict:
  """Places `[T, B]` schedule arrays (or batch-index arrays `[S, B]`) with B split over the mesh."""
  if mesh is None:
    return {k: jax.device_put(v) for k, v in arrays.items()}
  spec = NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))
  return {k: jax.device_put(v, spec) for k, v in arrays.items()}


def replicate(tree, mesh: Mesh | None):
  """Places every array of `tree` on each device of the mesh (on the default device without one)."""
  if mesh is None:
    return jax.tree.map(jax.device_put, tree)
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def place_state(state, mesh: Mesh | None):
  """Replicates a train state over the mesh, except its per-slot states, split along B.

  The per-slot states are `hidden` (`[B, H]` each) and, for HRNN, `user_hidden` (`[B, U]`).
  """
  if mesh is None:
    return state
  replicated = NamedSharding(mesh, PartitionSpec())
  by_slot = NamedSharding(mesh, PartitionSpec(DATA_AXIS, None))
  hidden = tuple(jax.device_put(h, by_slot) for h in state.hidden)
  rest = jax.device_put(state, replicated)
  rest.hidden = hidden
  if hasattr(rest, 'user_hidden'):
    rest.user_hidden = jax.device_put(state.user_hidden, by_slot)
  return rest
