"""Evaluations of seal-agent (``seal-agent eval``): what the agent remembers, measured.

* ``squad.py``: SEAL's knowledge-incorporation protocol on SQuAD passages.
* ``conversations.py``: memory on long conversations (LoCoMo, LongMemEval).
* ``facts.py``, ``facts_data.py``: the personal-facts set, said from the weights.
* ``data.py``: the data sets' loaders and the dev / held-out split.
* ``scoring.py``: the data sets' own scoring, and bootstrap intervals.
* ``results.py``, ``run.py``: result files, reports, and end-to-end runs.

Nothing is imported here: each module loads the model, torch or scipy only
when its run needs them, so ``seal-agent --help`` stays fast.
"""
