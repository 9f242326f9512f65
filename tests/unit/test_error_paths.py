"""Errors that used to be swallowed by broad excepts now reach the user or the log."""

from __future__ import annotations

import pytest
from ray.exceptions import AuthenticationError, RpcError

from itwinai_ray.backends.ray import nodes


def test_the_node_waiter_retries_a_gcs_that_is_not_up_but_not_a_refused_token(monkeypatch):
    calls = []

    def alive(address):
        calls.append(address)
        if len(calls) == 1:
            raise RpcError("Timed out while waiting for GCS to become available.", rpc_code=4)
        raise AuthenticationError("token mismatch")

    monkeypatch.setattr(nodes, "alive_node_names", alive)
    with pytest.raises(AuthenticationError):
        nodes.wait_for_nodes("127.0.0.1:1", ["n1"], timeout_s=5)
    assert len(calls) == 2
    assert not nodes._not_up_yet(RpcError("unauthenticated", rpc_code=16))
    assert nodes._not_up_yet(ConnectionError("refused"))


def test_the_best_config_skips_a_step_that_does_not_import_but_not_a_broken_one(monkeypatch):
    from itwinai_ray.tuning import best_config

    config = {"training_pipeline": {"class_path": "itwinai_ray.Pipeline", "init_args": {
        "steps": [{"class_path": "no_such_module.Step"},
                  {"class_path": "itwinai_ray.RayTorchTrainer"}]}}}
    assert best_config.hpo_step_location(config, "training_pipeline") is not None

    def broken(path):
        raise RuntimeError("a bug in the user's module")

    monkeypatch.setattr("itwinai_ray.config.instantiate.resolve_target", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        best_config.hpo_step_location(config, "training_pipeline")
