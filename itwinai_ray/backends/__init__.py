"""Backends: where an HPO experiment runs. Today one, :mod:`itwinai_ray.backends.ray`."""
