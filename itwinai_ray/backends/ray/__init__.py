"""The Ray backend: the only package of itwinai-ray that imports Ray (Train V2 and Tune).

The HPO core (:mod:`itwinai_ray.tuning`) validates and plans an experiment in plain Python;
this package runs it. Modules, driver side first:

- :mod:`.entry`: the entry point from the HPO core: connect, run one experiment, stop.
- :mod:`.driver`: ``ray.init`` / shutdown, the cluster's capacity, the Tuner of one experiment.
- :mod:`.translate`: neutral search-space and algorithm specs -> ``ray.tune`` objects.
- :mod:`.session`: a TorchTrainer run inside a user's own Tune trainable reports to Tune.
- :mod:`.trial`: the trial side: the Tune function trainable and the Train V2 worker loop.
- :mod:`.registry`: the per-experiment registry actor (placement groups, Train run
  directories, report mailboxes); :mod:`.forwarding`: the Train callback that hands reports
  to the trial; :mod:`.release`: the Tune callback that releases a stopped trial's leftovers.
- :mod:`.restore`: resuming an experiment (``Tuner.restore``) and per-trial stop conditions.
- :mod:`.observers`, :mod:`.progress`, :mod:`.journal`, :mod:`.mlflow_callback`: the Tune
  callbacks that feed the progress view, the trial journal and MLflow.
- :mod:`.fail_fast`, :mod:`.interrupts`, :mod:`.logs`: fail-fast stopper, signals that come
  before the Tuner starts, retried trials' histories.
- :mod:`.output`, :mod:`.security`, :mod:`.reaper`, :mod:`.nodes`: Ray's log files, securing
  and reaping the local Ray instance, waiting for SLURM nodes to join.
- :mod:`._private`: the Ray internals without a public API in Ray 2.60, each wrapped once.

Submodules are imported on use: importing this package imports no Ray.
"""
