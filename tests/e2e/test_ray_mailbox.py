"""The report mailbox of a Train run, kept in the experiment's registry actor (real Ray)."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from itwinai_ray.backends.ray import registry as _ray_callbacks
from itwinai_ray.backends.ray.driver import ensure_ray, shutdown


@pytest.fixture(scope="module")
def registry():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        started = ensure_ray(num_cpus=2, include_dashboard=False)
        import ray

        registry_cls = _ray_callbacks.Registry
        name = "itwinai_ray_test_mailbox_registry"
        namespace = ray.get_runtime_context().namespace
        actor = registry_cls.options(name=name, namespace=namespace).remote()
        try:
            yield name, namespace
        finally:
            ray.kill(actor)
            if started:
                shutdown()


@pytest.mark.timeout(120)
def test_mailbox_hands_over_in_order_with_back_pressure(registry) -> None:
    box = _ray_callbacks.Mailbox(*registry, "run-a")
    other = _ray_callbacks.Mailbox(*registry, "run-b")
    assert box.empty()
    with pytest.raises(queue.Empty):
        box.get(timeout=0.1)
    box.put(({"loss": 1.0}, None))
    assert not box.empty() and other.empty()  # one mailbox per Train run
    second_done = threading.Event()

    def put_second() -> None:
        box.put(({"loss": 0.5}, "ckpt"))
        second_done.set()

    thread = threading.Thread(target=put_second, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert not second_done.is_set()  # size 1: the second put waits for the first get
    assert box.get(timeout=5) == ({"loss": 1.0}, None)
    assert second_done.wait(10)
    assert box.get(timeout=5) == ({"loss": 0.5}, "ckpt")
    assert box.empty()
    # A registry registration still works next to the mailboxes (the same actor).
    assert _ray_callbacks.registry_call(*registry, "register", "t1", None, "/x") is None
    assert _ray_callbacks.registry_call(*registry, "pop", "t1") == ([], ["/x"])


@pytest.mark.timeout(120)
def test_closed_mailbox_fails_a_blocked_put(registry) -> None:
    import ray

    box = _ray_callbacks.Mailbox(*registry, "run-c")
    box.put(({"loss": 1.0}, None))
    errors: list[BaseException] = []

    def blocked_put() -> None:
        try:
            box.put(({"loss": 2.0}, None))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    thread = threading.Thread(target=blocked_put, daemon=True)
    thread.start()
    time.sleep(0.5)
    box.shutdown(force=True)
    thread.join(10)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], ray.exceptions.RayTaskError)
    assert "stopped taking reports" in str(errors[0])
    with pytest.raises(ray.exceptions.RayTaskError, match="closed"):
        box.put(({"loss": 3.0}, None))  # a later put fails too (no one will take it)
