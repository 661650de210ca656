"""Config files: each defines `get_config()`; load with `--config=seqrec/configs/<name>.py`."""
