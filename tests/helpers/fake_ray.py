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


class TaskError(Exception):
    """Ray's RayTaskError: the call raised ``cause`` in the worker."""

    def __init__(self, cause: Exception):
        super().__init__(f"the task raised {cause!r}")
        self.cause = cause


class GetTimeout(Exception):
    """Ray's GetTimeoutError: ray.get(ref, timeout=...) ran out of time."""


class WaitsForEver(BaseException):
    """ray.get without a timeout on a call that never answers: the run would hang (a
    BaseException, so that no ``except Exception`` in the driver hides it)."""


class _Ref:
    def __init__(self, actor: _Actor, value: Any = None, **state):
        self.actor, self.value = actor, value
        self.died, self.hangs = state.get("died", False), state.get("hangs", False)
        self.error: Exception | None = state.get("error")


class _Method:
    def __init__(self, actor: _Actor, name: str):
        self.actor, self.name = actor, name

    def remote(self, *args) -> _Ref:
        actor, ray = self.actor, self.actor.ray
        if actor.dead or ray.dies(self.name, args):
            actor.dead = True  # its later calls fail too
            ray.deaths.append((self.name, args))
            return _Ref(actor, died=True)
        if self.name == "owner" and ray.owner_hangs:
            return _Ref(actor, hangs=True)
        ray.calls.append((self.name, args))
        actor.calls.append((self.name, args))
        try:
            answer = getattr(actor.instance, self.name)(*args)
        except Exception as err:  # noqa: BLE001 - Ray hands it to ray.get's caller
            return _Ref(actor, error=err)
        if ray.dies_after(self.name, args):
            actor.dead = True
            ray.deaths.append((self.name, args))
            return _Ref(actor, died=True)
        return _Ref(actor, answer)


class _Actor:
    def __init__(self, ray: FakeRay, instance: Any):
        self.ray, self.instance, self.dead = ray, instance, False
        self.calls: list[tuple[str, tuple]] = []  # the calls it ran

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
    """``cpus`` and ``gpus`` in the cluster, on one node (or ``nodes``: each live node's
    resources, as Ray lists them: a resource it lacks is left out); ``dies(method,
    args)``: whether the worker dies on that call; ``dies_after``: the same, once the
    call has done its work (its answer is lost); ``owner_hangs``: a worker's owner()
    never answers; ``slow_workers``: the actors (by index) whose results come back last."""

    def __init__(
        self,
        cpus: int = 2,
        gpus: int = 0,
        dies: Callable[[str, tuple], bool] | None = None,
        nodes: list[dict[str, float]] | None = None,
        owner_hangs: bool = False,
        slow_workers: set[int] = frozenset(),
        dies_after: Callable[[str, tuple], bool] | None = None,
    ):
        one_node = {"CPU": cpus, "GPU": gpus}
        self.live_nodes = nodes or [{k: v for k, v in one_node.items() if v}]
        self.dies = dies or (lambda method, args: False)
        self.dies_after = dies_after or (lambda method, args: False)
        self.owner_hangs, self.slow_workers = owner_hangs, slow_workers
        self.exceptions = SimpleNamespace(RayActorError=ActorDied, RayTaskError=TaskError)
        self.actors: list[_Actor] = []
        self.killed: list[_Actor] = []
        self.calls: list[tuple[str, tuple]] = []  # the calls that ran, in order
        self.deaths: list[tuple[str, tuple]] = []  # the calls a worker died on
        self.options: dict = {}
        self.most_in_flight = 0
        self.shut_down = False

    def nodes(self) -> list[dict]:
        live = [{"Alive": True, "Resources": node} for node in self.live_nodes]
        return [*live, {"Alive": False, "Resources": {"CPU": 99, "GPU": 9}}]

    def remote(self, cls: type) -> _ActorClass:
        return _ActorClass(self, cls)

    def wait(self, refs: list[_Ref], num_returns: int = 1) -> tuple[list, list]:
        if not 1 <= num_returns <= len(refs):  # as Ray checks it
            raise ValueError(f"num_returns {num_returns} of {len(refs)} objects")
        self.most_in_flight = max(self.most_in_flight, len(refs))
        refs = sorted(refs, key=lambda ref: self.actors.index(ref.actor) in self.slow_workers)
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: _Ref, timeout: float | None = None) -> Any:
        if ref.hangs:
            if timeout is None:
                raise WaitsForEver("ray.get would wait for ever")
            raise GetTimeout(f"no answer in {timeout} s")
        if ref.died:
            raise ActorDied("the actor died unexpectedly before finishing this task")
        if ref.error is not None:
            raise TaskError(ref.error)
        return ref.value

    def kill(self, actor: _Actor) -> None:
        self.killed.append(actor)

    def shutdown(self) -> None:
        self.shut_down = True
