"""An in-process stand-in for the part of Ray's API that ``predict --ray``'s driver uses
(``inference/distributed._drive``): actors run in this process, a call when submitted,
and results come back in submission order. A test makes workers die on chosen calls.

For tests of the driver's logic (what it submits, retries, splits and assembles, and
the resources it asks for) in a fraction of a second; tests/inference/test_distributed.py
runs the same driver on a real local Ray."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any


class ActorDied(Exception):
    """Ray's RayActorError: the worker process running a call died."""


class _Ref:
    def __init__(self, value: Any = None, died: bool = False):
        self.value, self.died = value, died


class _Method:
    def __init__(self, actor: _Actor, name: str):
        self.actor, self.name = actor, name

    def remote(self, *args) -> _Ref:
        actor = self.actor
        if actor.dead or actor.ray.dies(self.name, args):
            actor.dead = True  # its later calls fail too
            return _Ref(died=True)
        actor.ray.calls.append((self.name, args))
        return _Ref(getattr(actor.instance, self.name)(*args))


class _Actor:
    def __init__(self, ray: FakeRay, instance: Any):
        self.ray, self.instance, self.dead = ray, instance, False

    def __getattr__(self, name: str) -> _Method:
        return _Method(self, name)


class _ActorClass:
    def __init__(self, ray: FakeRay, cls: type):
        self.ray, self.cls = ray, cls

    def options(self, **options) -> _ActorClass:
        self.ray.options = options
        return self

    def remote(self, *args) -> _Actor:
        actor = _Actor(self.ray, self.cls(*args))
        self.ray.actors.append(actor)
        return actor


class FakeRay:
    """``cpus`` and ``gpus`` in the cluster, on one node; ``dies(method, args)``: whether
    the worker dies on that call."""

    def __init__(
        self, cpus: int = 2, gpus: int = 0, dies: Callable[[str, tuple], bool] | None = None
    ):
        self.cpus, self.gpus = cpus, gpus
        self.dies = dies or (lambda method, args: False)
        self.exceptions = SimpleNamespace(RayActorError=ActorDied)
        self.actors: list[_Actor] = []
        self.killed: list[_Actor] = []
        self.calls: list[tuple[str, tuple]] = []  # the calls that ran, in order
        self.options: dict = {}
        self.most_in_flight = 0
        self.shut_down = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}

    def nodes(self) -> list[dict]:
        return [
            {"Alive": True, "Resources": {"CPU": self.cpus}},
            {"Alive": False, "Resources": {"CPU": 99}},
        ]

    def remote(self, cls: type) -> _ActorClass:
        return _ActorClass(self, cls)

    def wait(self, refs: list[_Ref], num_returns: int = 1) -> tuple[list, list]:
        self.most_in_flight = max(self.most_in_flight, len(refs))
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: _Ref, timeout: float | None = None) -> Any:
        if ref.died:
            raise ActorDied("the actor died unexpectedly before finishing this task")
        return ref.value

    def kill(self, actor: _Actor) -> None:
        self.killed.append(actor)

    def shutdown(self) -> None:
        self.shut_down = True
