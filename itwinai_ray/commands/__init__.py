"""The subcommands that :mod:`itwinai_ray.cli` implements itself: ``exec-pipeline``
(:mod:`.exec_pipeline`) and ``tune`` (:mod:`.tune`), each a ``configure(parser)``, a
``run(args)`` and its ``EXAMPLES``, plus what both do after a run (:mod:`.outcome`). The
other subcommands live in :mod:`itwinai_ray.report` and :mod:`itwinai_ray.slurm`.

Cheap to import: the heavy modules (the loader, Ray, rich) are imported inside functions.
"""
