"""Runs one config over several seeds: experiments/sweep.py without `--axis`, under its old name.

    python experiments/seeds.py --config=seqrec/configs/gru4rec_rsc15_100k.py --seeds=0,1,2 \
      --label=gru4rec-rsc15-100k --output=experiments/gru4rec_fidelity/results.jsonl

Runs go to `WORKDIR_ROOT/LABEL-seedS`; each appends one JSON line (label, seed, date, device, test
metrics, training speed; see sweep.py) to `--output`, and a re-run skips the seeds recorded there
as finished. The markdown table is made from these files by experiments/results_table.py.
"""

import sweep
from absl import app

from seqrec import cli

if __name__ == '__main__':
  app.run(sweep.main, flags_parser=cli.parse_flags)
