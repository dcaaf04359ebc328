"""The workloads of the bench and their sizes, independent of the engine that runs them.

- W1: ``count`` workflows of ``steps`` sequential no-op activities (500 x 2).
- W2: the same shape, longer (100 x 10).
- W3: ``count`` workflows that each start ``steps`` no-op activities at once and gather them
  (10 x 100).
- tree: go-workflows' ``bench`` (``bench/workflows.go``): a root starts ``fanout`` mid
  workflows; a mid at depth d > 0 starts ``fanout`` mids of depth d - 1, one at depth 0 starts
  ``leaf_fanout`` leaf workflows; a leaf runs ``activities`` activities at once, each returning a
  ``result_size``-byte string; every level waits for all its children.

Every workflow instance has a known id, so the driver can read each one's history afterwards:
roots are ``<workload>-<i>``, a sub-workflow is ``<parent id>.<index>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("W1", "W2", "W3", "tree")
#: The workloads DBOS runs too (it has no tree of sub-workflows in the issue's comparison).
DBOS_WORKLOADS = ("W1", "W2", "W3")
SCALES = ("smoke", "full")


@dataclass(frozen=True)
class TreeShape:
    depth: int
    fanout: int
    leaf_fanout: int
    activities: int
    result_size: int

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError("tree depth must be at least 1 (go-workflows' root starts mids of depth - 1)")
        for name in ("fanout", "leaf_fanout", "activities"):
            if getattr(self, name) < 1:
                raise ValueError(f"tree {name} must be at least 1")
        if self.result_size < 0:
            raise ValueError("tree result_size must not be negative")

    def as_args(self) -> dict[str, int]:
        return {
            "depth": self.depth,
            "fanout": self.fanout,
            "leaf_fanout": self.leaf_fanout,
            "activities": self.activities,
            "result_size": self.result_size,
        }


@dataclass(frozen=True)
class Workload:
    name: str
    #: Root workflow instances, all created before the workers start.
    count: int
    #: Activities per root (W1-W3); unused by the tree.
    steps: int = 0
    tree: TreeShape | None = None
    description: str = field(default="", compare=False)

    @property
    def workflow_name(self) -> str:
        return {"W1": "bench_chain", "W2": "bench_chain", "W3": "bench_fanout", "tree": "bench_tree_root"}[self.name]

    def root_ids(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]

    def root_args(self) -> list[Any]:
        if self.tree is not None:
            return [self.tree.as_args()]
        return [self.steps]

    def all_instance_ids(self) -> list[str]:
        """Roots and every sub-workflow they start, by the naming rule above."""
        ids = []
        for root in self.root_ids():
            ids.append(root)
            if self.tree is not None:
                ids.extend(_tree_children(root, self.tree))
        return ids

    @property
    def expected_activities(self) -> int:
        if self.tree is None:
            return self.count * self.steps
        t = self.tree
        return self.count * t.fanout**t.depth * t.leaf_fanout * t.activities

    @property
    def expected_workflows(self) -> int:
        """Workflow instances in all, sub-workflows included."""
        if self.tree is None:
            return self.count
        t = self.tree
        mids = sum(t.fanout**level for level in range(1, t.depth + 1))
        leaves = t.fanout**t.depth * t.leaf_fanout
        return self.count * (1 + mids + leaves)

    def label(self) -> str:
        if self.tree is None:
            return f"{self.name} ({self.count} x {self.steps})"
        t = self.tree
        return (
            f"tree ({self.count} x depth {t.depth}, fan-out {t.fanout}, leaf fan-out {t.leaf_fanout}, "
            f"{t.activities} act, {t.result_size} B)"
        )


def _tree_children(root: str, shape: TreeShape) -> list[str]:
    """Ids of every workflow below ``root``: its mids, theirs, and the leaves."""
    ids: list[str] = []

    def mid(parent: str, depth: int) -> None:
        # A mid of depth 0 starts leaves (which start nothing); deeper ones start mids.
        if depth == 0:
            ids.extend(f"{parent}.{i}" for i in range(shape.leaf_fanout))
            return
        for i in range(shape.fanout):
            ids.append(f"{parent}.{i}")
            mid(f"{parent}.{i}", depth - 1)

    for i in range(shape.fanout):
        ids.append(f"{root}.{i}")
        mid(f"{root}.{i}", shape.depth - 1)
    return ids


_SIZES: dict[str, dict[str, Workload]] = {
    "full": {
        "W1": Workload("W1", 500, 2, description="500 workflows x 2 sequential no-op activities"),
        "W2": Workload("W2", 100, 10, description="100 workflows x 10 sequential no-op activities"),
        "W3": Workload("W3", 10, 100, description="10 workflows x fan-out of 100 no-op activities, gathered"),
        "tree": Workload(
            "tree", 2, tree=TreeShape(depth=2, fanout=4, leaf_fanout=4, activities=4, result_size=100),
            description="go-workflows' bench tree",
        ),
    },
    "smoke": {
        "W1": Workload("W1", 5, 2),
        "W2": Workload("W2", 2, 10),
        "W3": Workload("W3", 2, 10),
        "tree": Workload("tree", 1, tree=TreeShape(depth=1, fanout=2, leaf_fanout=2, activities=2, result_size=10)),
    },
}


def get_workload(name: str, scale: str) -> Workload:
    if scale not in _SIZES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    if name not in _SIZES[scale]:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, not {name!r}")
    return _SIZES[scale][name]
