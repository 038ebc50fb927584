"""Checking a dataset before training on it (`photoclass check`): layout problems, unreadable
files, image quality, duplicates and leakage between splits, likely mislabelled and off-topic
photos (from pretrained features), class imbalance, and a collected dataset's manifest against
its folder; every finding with a confidence, the rule behind it and what to do.

Parts: `layout` (the files, and what train would refuse), `quality`, `duplicates`, `features`
(pretrained features), `outliers` (off-topic), `labels` (mislabelled, imbalance), `agreement`
(the manifest), `quarantine` (fix and undo), `report` (the HTML page); `check` wires them.

The package itself imports nothing, so that the command line reads the defaults in `findings`
without loading torch; `photoclass.check` in `api.py` is the way in.
"""
