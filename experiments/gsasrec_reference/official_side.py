"""The gSASRec-pytorch side of the cross-check: one exported batch, or a training curve.

Runs in an environment with PyTorch and numpy (seqrec is not needed) and imports the model from
a clone of the official code (github.com/asash/gSASRec-pytorch; `gsasrec.py` and
`transformer_decoder.py` are all it uses):

    python experiments/gsasrec_reference/official_side.py export --official_dir=DIR \
      --split=../shared/datasets/ml1m_sasrec/gsasrec_split --out=/tmp/gsasrec_batch.npz
    python experiments/gsasrec_reference/official_side.py curve --official_dir=DIR \
      --split=../shared/datasets/ml1m_sasrec/gsasrec_split --max_len=50 --dim=64 --epochs=80 \
      --out=/tmp/official_curve.jsonl

`export` builds the model at its own initialisation, takes the first users' training windows,
and writes the weights, the eval-mode hidden states, and the gBCE loss and gradients of one
training batch (dropout off), computed as `train_gsasrec.py` computes them: the positive logit
transformed in float64 with s(pos) clamped into [1e-10, 1 - 1e-10], BCE averaged over the K + 1
logits of a position, positions masked by a real input item. `compare.py` loads that file into
seqrec's SASRec.

`curve` trains as `train_gsasrec.py` does (Adam with PyTorch's defaults, batch 128, shuffled
users, K uniform negatives from 1..N per position, an epoch is one pass over the users) and
prints one JSON line per epoch: training loss, validation NDCG@10 of the 512 validation users
(rated items filtered, as its evaluation does) and how far the users' representations spread
around their mean. The logits of a batch are computed as one product with the output table and
a column gather: the same numbers and gradients as gathering the K + 1 rows, at a fraction of
the CPU time.
"""

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import torch

EPS = 1e-10  # gSASRec-pytorch's clamp of s(pos)


def read_split(split: pathlib.Path) -> dict:
  """The split's files: item count, training sequences, validation inputs and targets."""

  def lines(name):
    return [list(map(int, line.split())) for line in (split / name).read_text().splitlines()]

  return {
    'n_items': json.loads((split / 'dataset_stats.json').read_text())['num_items'],
    'train': lines('train/input.txt'),
    'valid_inputs': lines('val/input.txt'),
    'valid_targets': [row[0] for row in lines('val/output.txt')],
  }


def windows(sequences: list[list[int]], width: int, pad: int) -> torch.Tensor:
  """[U, width]: each sequence's last `width` items, left-padded with the official pad id N + 1."""
  rows = [[pad] * (width - len(s[-width:])) + s[-width:] for s in sequences]
  return torch.tensor(rows, dtype=torch.long)


def gbce_loss(logits: torch.Tensor, mask: torch.Tensor, n_items: int, n_neg: int, t: float):
  """train_gsasrec.py's loss: logits [B, L, 1 + K] (target first), mask [B, L] -> scalar."""
  alpha = n_neg / (n_items - 1)
  beta = alpha * ((1 - 1 / alpha) * t + 1 / alpha)
  pos = logits[..., :1].to(torch.float64)
  neg = logits[..., 1:].to(torch.float64)
  big = torch.finfo(torch.float64).max
  prob = torch.clamp(torch.sigmoid(pos), EPS, 1 - EPS)
  adjusted = torch.clamp(prob.pow(-beta), 1 + EPS, big)
  gamma = torch.clamp(1.0 / (adjusted - 1), EPS, big).log()
  labels = torch.zeros(logits.shape, dtype=torch.float64)
  labels[..., 0] = 1.0  # the target comes first
  per_logit = torch.nn.functional.binary_cross_entropy_with_logits(
    torch.cat([gamma, neg], -1), labels, reduction='none'
  )  # [B, L, 1 + K]
  return (per_logit.mean(-1) * mask).sum() / mask.sum()


def build(args, n_items: int):
  sys.path.insert(0, str(pathlib.Path(args.official_dir).resolve()))
  from gsasrec import GSASRec  # noqa: PLC0415  (the official model, from the user's clone)

  return GSASRec(
    n_items,
    sequence_length=args.max_len,
    embedding_dim=args.dim,
    num_heads=1,
    num_blocks=2,
    dropout_rate=args.dropout,
  )


def export(args) -> None:
  data = read_split(pathlib.Path(args.split))
  n, pad = data['n_items'], data['n_items'] + 1
  model = build(args, n).eval()  # eval: dropout off, so both sides see the same network
  batch = windows(data['train'][: args.users], args.max_len + 1, pad)  # [B, L + 1]
  inputs, labels = batch[:, :-1], batch[:, 1:]
  negatives = torch.randint(1, pad, labels.shape + (args.negatives,))  # [B, L, K]
  hidden, _ = model(inputs)  # [B, L, D]
  candidates = torch.cat([labels[..., None], negatives], -1)  # [B, L, 1 + K]
  logits = torch.einsum('bld,blkd->blk', hidden, model.get_output_embeddings()(candidates))
  mask = (inputs != pad).to(torch.float64)
  loss = gbce_loss(logits, mask, n, args.negatives, args.t)
  loss.backward()
  arrays = {f'param/{k}': v.detach().numpy() for k, v in model.state_dict().items()}
  arrays.update(
    {f'grad/{k}': p.grad.numpy() for k, p in model.named_parameters() if p.grad is not None}
  )
  arrays.update(
    inputs=inputs.numpy(),
    labels=labels.numpy(),
    negatives=negatives.numpy(),
    hidden=hidden.detach().numpy(),
    loss=np.array(loss.item()),
    n_items=np.array(n),
    t=np.array(args.t),
  )
  np.savez(args.out, **arrays)
  print(f'wrote {args.out}: loss {loss.item():.6f} over {int(mask.sum())} positions')


def curve(args) -> None:
  data = read_split(pathlib.Path(args.split))
  n, pad = data['n_items'], data['n_items'] + 1
  model = build(args, n)
  optimiser = torch.optim.Adam(model.parameters())
  train = windows(data['train'], args.max_len + 1, pad)  # [U, L + 1]
  valid_x = windows(data['valid_inputs'], args.max_len, pad)  # [V, L]
  valid_y = torch.tensor(data['valid_targets'])
  out = open(args.out, 'w') if args.out else None
  for epoch in range(1, args.epochs + 1):
    model.train()
    start, total, steps = time.time(), 0.0, 0
    order = torch.randperm(len(train))
    for first in range(0, len(order), args.batch_size):
      batch = train[order[first : first + args.batch_size]]
      inputs, labels = batch[:, :-1], batch[:, 1:]
      negatives = torch.randint(1, pad, labels.shape + (args.negatives,))
      hidden, _ = model(inputs)  # [B, L, D]
      scores = hidden @ model.get_output_embeddings().weight.T  # [B, L, N + 2]
      logits = torch.gather(scores, 2, torch.cat([labels[..., None], negatives], -1))
      loss = gbce_loss(logits, (inputs != pad).to(torch.float64), n, args.negatives, args.t)
      loss.backward()
      optimiser.step()
      optimiser.zero_grad()
      total, steps = total + loss.item(), steps + 1
    model.eval()
    with torch.no_grad():
      query = model(valid_x)[0][:, -1]  # [V, D]
      scores = query @ model.get_output_embeddings().weight.T  # [V, N + 2]
      scores[:, 0] = -math.inf
      scores[:, n + 1 :] = -math.inf
      for row, seen in enumerate(data['valid_inputs']):
        scores[row, sorted(set(seen))] = -math.inf
      target = scores[torch.arange(len(valid_y)), valid_y]
      rank = (scores > target[:, None]).sum(1).double()  # 0-based
      ndcg = torch.where(rank < 10, 1.0 / torch.log2(rank + 2.0), 0.0).mean().item()
      spread = (query - query.mean(0)).norm(dim=1).mean() / query.norm(dim=1).mean()
    line = json.dumps(
      dict(
        epoch=epoch,
        train_loss=total / steps * (args.negatives + 1),  # per target, summed over K + 1 terms
        valid_ndcg10=ndcg,
        user_spread=spread.item(),
        seconds=time.time() - start,
      )
    )
    print(line, flush=True)
    if out:
      out.write(line + '\n')
      out.flush()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('what', choices=['export', 'curve'])
  parser.add_argument('--official_dir', required=True, help='clone of gSASRec-pytorch')
  parser.add_argument('--split', required=True, help='gSASRec ML-1M split directory')
  parser.add_argument('--out', default=None)
  parser.add_argument('--max_len', type=int, default=200)
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--dropout', type=float, default=0.5)
  parser.add_argument('--negatives', type=int, default=256)
  parser.add_argument('--t', type=float, default=0.75)
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--users', type=int, default=16, help='export: users in the batch')
  parser.add_argument('--epochs', type=int, default=80)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  torch.manual_seed(args.seed)
  export(args) if args.what == 'export' else curve(args)


if __name__ == '__main__':
  main()
