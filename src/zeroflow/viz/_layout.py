"""A layered (Sugiyama-style) top-down layout in pure Python.

Steps: break forward cycles, layer by longest path, insert dummy vertices on
long edges, reduce crossings with barycentre sweeps, place x by weighted
isotonic regression (keeps order and spacing, pulls towards neighbours),
then route edges through the node-free gaps between layers. Everything is
data in, data out, and deterministic: orders come from input order and
sorts, never from set iteration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

from zeroflow.viz._layers import break_cycles, components, isotonic, longest_path_layers, order

Point = tuple[float, float]
RouteKind = Literal["down", "up", "flat", "self"]

NODE_SEP = 28.0
DUMMY_SEP = 12.0
MIN_GAP = 52.0
LABEL_PAD = 10.0
MARGIN = 16.0
SELF_LOOP = 30.0
SELF_STEP = 10.0
HEX_INSET = 12.0
MAP_OFFSET = 5.0
WAIT_RADIUS = 12.0
RECT_RADIUS = 5.0
PLACEMENT_PASSES = 10
CLUSTER_PAD = 14.0
CLUSTER_TITLE = 22.0

Direction = Literal["TB", "BT", "LR", "RL"]


@dataclass(frozen=True, slots=True)
class LayoutNode:
    """A node to place: its id, box size and shape name (see `side_span`)."""

    id: str
    width: float
    height: float
    shape: str = "rect"


@dataclass(frozen=True, slots=True)
class LayoutEdge:
    """An edge to route; a zero label size means no label."""

    source: str
    target: str
    label_width: float = 0.0
    label_height: float = 0.0
    loopback: bool = False


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box by its top-left corner and size."""

    x: float
    y: float
    width: float
    height: float

    @property
    def cx(self) -> float:
        """Horizontal centre."""
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        """Vertical centre."""
        return self.y + self.height / 2

    @property
    def right(self) -> float:
        """Right edge."""
        return self.x + self.width

    @property
    def bottom(self) -> float:
        """Bottom edge."""
        return self.y + self.height

    def overlaps(self, other: Box, margin: float = 0.0) -> bool:
        """True when the boxes share interior area (touching edges do not count)."""
        return (
            self.x < other.right + margin
            and other.x < self.right + margin
            and self.y < other.bottom + margin
            and other.y < self.bottom + margin
        )


@dataclass(frozen=True, slots=True)
class Route:
    """An edge's path: points from source boundary to target boundary, and its label box."""

    source: str
    target: str
    kind: RouteKind
    points: tuple[Point, ...]
    label: Box | None
    curved: tuple[bool, ...] = ()
    """Per segment: True where it crosses a gap between layers (drawn as a curve)."""
    path: tuple[tuple[Point, ...], ...] = ()
    """The drawn path after the first point: 1 point per straight piece, 3 per cubic curve."""


@dataclass(frozen=True, slots=True)
class LayoutCluster:
    """A box to draw around nodes: its direct members, parent cluster and title size."""

    id: str
    members: tuple[str, ...]
    parent: str | None = None
    title_width: float = 0.0


@dataclass(frozen=True, slots=True)
class Layout:
    """The placed drawing: node boxes, routes in input edge order, and overall size."""

    boxes: Mapping[str, Box]
    routes: tuple[Route, ...]
    layers: tuple[tuple[str, ...], ...]
    width: float
    height: float
    clusters: Mapping[str, Box] = field(default_factory=dict)
    """Cluster boxes by id; the title sits inside the top `CLUSTER_TITLE` of the box."""
    direction: Direction = "TB"


_OUTLINE_OF: Mapping[str, str] = {"end": "stadium", "marker": "stadium"}
"""Shapes whose outline is another's, for where edges attach."""


def side_span(shape: str, box: Box, horizontal: bool = False) -> tuple[float, float]:
    """Where edges attach: the x range on the top and bottom sides of a shape, or
    with `horizontal` the y range on its left and right sides.

    For straight sides this is the straight part, so edge ends lie exactly on
    the outline; on slanted or round sides (diamonds, the round ends of a
    stadium, the points of a hexagon) it is the middle part, and `outline_depth`
    says how far inside the box the outline is there. An ``end`` node is a
    (double) stadium and a ``marker`` a pill, so they attach like a stadium.
    """
    shape = _OUTLINE_OF.get(shape, shape)
    if horizontal:
        inset = {
            "stadium": box.height / 4,
            "hexagon": box.height / 4,
            "diamond": box.height / 4,
            "map": MAP_OFFSET + 2,
            "wait": WAIT_RADIUS,
        }.get(shape, RECT_RADIUS)
        inset = min(inset, box.height / 2 - 1)
        return box.y + inset, box.bottom - inset
    inset = {
        "stadium": box.height / 2,
        "hexagon": HEX_INSET,
        "diamond": box.width / 4,
        "map": MAP_OFFSET + 2,
        "wait": WAIT_RADIUS,
    }.get(shape, RECT_RADIUS)
    inset = min(inset, box.width / 2 - 1)
    return box.x + inset, box.right - inset


def outline_depth(shape: str, box: Box, cross: float, horizontal: bool = False) -> float:
    """How far inside its box the outline of a shape is, at `cross` along a side.

    `cross` is an x on the top or bottom side, or with `horizontal` a y on the
    left or right side; zero on straight sides.
    """
    shape = _OUTLINE_OF.get(shape, shape)
    if horizontal:
        half, half_other, d = box.height / 2, box.width / 2, abs(cross - box.cy)
    else:
        half, half_other, d = box.width / 2, box.height / 2, abs(cross - box.cx)
    if half <= 0:
        return 0.0
    ratio = min(d / half, 1.0)
    if shape == "diamond":
        return half_other * ratio
    if horizontal and shape == "hexagon":
        return HEX_INSET * ratio
    if horizontal and shape == "stadium":
        r = box.height / 2
        return float(r - (max(r * r - d * d, 0.0)) ** 0.5)
    return 0.0


# ---------------------------------------------------------------- driver


@dataclass
class _Work:
    """Mutable scratch state for one layout call."""

    n: int
    layer: list[int]
    chains: list[list[int]] = field(default_factory=list)
    left: list[float] = field(default_factory=list)
    right: list[float] = field(default_factory=list)
    real: list[bool] = field(default_factory=list)
    self_loops: dict[int, list[int]] = field(default_factory=dict)
    paths: list[tuple[int, ...]] = field(default_factory=list)
    horizontal: bool = False
    title_below: bool = False
    shapes: list[str] = field(default_factory=list)


def _cluster_paths(
    nodes: Sequence[LayoutNode], clusters: Sequence[LayoutCluster]
) -> list[tuple[int, ...]]:
    """Each node's chain of cluster indexes, outermost first (empty when in none)."""
    index = {c.id: i for i, c in enumerate(clusters)}
    home: dict[str, int] = {}
    for i, c in enumerate(clusters):
        for m in c.members:
            home.setdefault(m, i)

    def chain(ci: int) -> tuple[int, ...]:
        seen: list[int] = []
        cur: int | None = ci
        while cur is not None and cur not in seen:
            seen.append(cur)
            parent = clusters[cur].parent
            cur = index.get(parent) if parent is not None else None
        return tuple(reversed(seen))

    return [chain(home[nd.id]) if nd.id in home else () for nd in nodes]


def layout(
    nodes: Sequence[LayoutNode],
    edges: Sequence[LayoutEdge],
    *,
    first: str | None = None,
    direction: Direction = "TB",
    clusters: Sequence[LayoutCluster] = (),
) -> Layout:
    """Place nodes and route edges in layers; `first` (the entry) goes in the first layer.

    Layers run top to bottom (``TB``), bottom to top (``BT``), left to right
    (``LR``) or right to left (``RL``). Nodes of a cluster stay together and
    get a box (`Layout.clusters`). Edges whose ends are unknown ids are
    ignored. Returns routes in the order of `edges` (unknown-end edges omitted).
    """
    horizontal = direction in ("LR", "RL")
    if horizontal:
        # Lay out top-down with every size turned a quarter, then turn the drawing back.
        nodes = [LayoutNode(nd.id, nd.height, nd.width, nd.shape) for nd in nodes]
        edges = [
            LayoutEdge(e.source, e.target, e.label_height, e.label_width, e.loopback) for e in edges
        ]
    lay = _layout_down(nodes, edges, first, direction, clusters)
    return _orient(lay, direction, nodes, clusters)


def _layout_down(
    nodes: Sequence[LayoutNode],
    edges: Sequence[LayoutEdge],
    first: str | None,
    direction: Direction,
    clusters: Sequence[LayoutCluster],
) -> Layout:
    horizontal = direction in ("LR", "RL")
    ids = {nd.id: i for i, nd in enumerate(nodes)}
    used = [e for e in edges if e.source in ids and e.target in ids]
    pairs = [(ids[e.source], ids[e.target]) for e in used]
    n = len(nodes)
    if n == 0:
        return Layout({}, (), (), 2 * MARGIN, 2 * MARGIN)
    root = ids.get(first, 0) if first is not None else 0
    keep = break_cycles(n, pairs, [e.loopback for e in used], root)
    layer = longest_path_layers(n, pairs, keep, root)
    w = _Work(n=n, layer=list(layer), horizontal=horizontal, title_below=direction == "BT")
    w.paths = _cluster_paths(nodes, clusters)
    w.shapes = [nd.shape for nd in nodes]
    w.left = [nd.width / 2 for nd in nodes]
    w.right = [nd.width / 2 for nd in nodes]
    w.real = [True] * n
    kinds: list[RouteKind] = []
    for i, (s, t) in enumerate(pairs):
        if s == t:
            kinds.append("self")
            w.self_loops.setdefault(s, []).append(i)
            m = len(w.self_loops[s])
            widest = max(used[j].label_width for j in w.self_loops[s])
            reach = nodes[s].width / 2 + SELF_LOOP + (m - 1) * SELF_STEP + widest + 8
            w.right[s] = max(w.right[s], reach)
            w.chains.append([s])
            continue
        ls, lt = layer[s], layer[t]
        if ls == lt:
            kinds.append("flat")
            w.chains.append([s, t])
            continue
        step = 1 if lt > ls else -1
        kinds.append("down" if step == 1 else "up")
        chain = [s]
        shared: list[int] = []
        for a, b in zip(w.paths[s], w.paths[t], strict=False):
            if a != b:
                break
            shared.append(a)
        for li in range(ls + step, lt, step):
            d = len(w.layer)
            w.layer.append(li)
            w.left.append(0.0)
            w.right.append(0.0)
            w.real.append(False)
            w.paths.append(tuple(shared))
            chain.append(d)
        chain.append(t)
        w.chains.append(chain)
    nv = len(w.layer)
    up: list[list[int]] = [[] for _ in range(nv)]
    down: list[list[int]] = [[] for _ in range(nv)]
    for ci, chain in enumerate(w.chains):
        if kinds[ci] in ("self", "flat"):
            continue
        for a, b in pairwise(chain):
            hi, lo = (a, b) if w.layer[a] < w.layer[b] else (b, a)
            down[hi].append(lo)
            up[lo].append(hi)
    nranks = max(w.layer) + 1
    # Initial order: breadth-first from the entry over edges in definition order.
    seen: dict[int, int] = {}
    queue = [root]
    adj: list[list[int]] = [[] for _ in range(nv)]
    for chain in w.chains:
        for a, b in pairwise(chain):
            adj[a].append(b)
    while queue or len(seen) < nv:
        if not queue:
            queue.append(next(v for v in range(nv) if v not in seen))
        v = queue.pop(0)
        if v in seen:
            continue
        seen[v] = len(seen)
        queue.extend(x for x in adj[v] if x not in seen)
    ranks: list[list[int]] = [[] for _ in range(nranks)]
    comp = components(nv, w.chains, seen)
    for v in sorted(range(nv), key=lambda v: (comp[v], seen[v])):
        ranks[w.layer[v]].append(v)
    ranks = order(ranks, up, down, comp, w.paths)
    xs = [0.0] * nv
    # Each component is placed on its own, then packed beside the earlier ones.
    skyline: list[float | None] = [None] * nranks
    for c in range(max(comp) + 1):
        sub = [[v for v in rank if comp[v] == c] for rank in ranks]
        part = _place(sub, up, down, w)
        lefts = [part[r[0]] - w.left[r[0]] for r in sub if r]
        shift = -min(lefts)
        needs = [
            edge + 2 * NODE_SEP - (part[r[0]] - w.left[r[0]])
            for r, edge in zip(sub, skyline, strict=True)
            if r and edge is not None
        ]
        if needs:
            shift = max(needs)
        for li, rank in enumerate(sub):
            for v in rank:
                xs[v] = part[v] + shift
            if rank:
                skyline[li] = xs[rank[-1]] + w.right[rank[-1]]
    if any(w.paths):
        _clear_clusters(ranks, xs, w)
    return _finish(nodes, used, kinds, ranks, xs, w)


def _clear_clusters(ranks: list[list[int]], xs: list[float], w: _Work) -> None:
    """Push nodes out of the x range of clusters they are not in.

    A cluster's box spans all its layers, so a wide member in one layer can
    reach over a neighbour in another. Such a neighbour, and everything
    beyond it in its layer, moves out past the box (right when it sits after
    the cluster's members in its layer, else left); repeated while it helps.
    """
    clusters = sorted({c for p in w.paths for c in p})
    for _ in range(8):
        lo: dict[int, float] = {}
        hi: dict[int, float] = {}
        for v in range(w.n):
            for depth, c in enumerate(w.paths[v]):
                pad = (len(w.paths[v]) - depth) * CLUSTER_PAD
                lo[c] = min(lo.get(c, xs[v] - w.left[v] - pad), xs[v] - w.left[v] - pad)
                hi[c] = max(hi.get(c, xs[v] + w.right[v] + pad), xs[v] + w.right[v] + pad)
        moved = False
        for rank in ranks:
            for c in clusters:
                inside = [i for i, v in enumerate(rank) if c in w.paths[v]]
                for i, v in enumerate(rank):
                    if c in w.paths[v] or not w.real[v]:
                        continue
                    left, right = xs[v] - w.left[v], xs[v] + w.right[v]
                    if right <= lo[c] - 4 or left >= hi[c] + 4:
                        continue
                    if inside and i < inside[0]:
                        shift = (lo[c] - NODE_SEP / 2) - right
                        for u in rank[: i + 1]:
                            xs[u] += shift
                    else:
                        shift = (hi[c] + NODE_SEP / 2) - left
                        for u in rank[i:]:
                            xs[u] += shift
                    moved = True
        if not moved:
            return


def _sep(w: _Work, a: int, b: int) -> float:
    """Minimum centre distance between neighbours `a` and `b` in a layer.

    Neighbours in different clusters are kept apart by the clusters' padding
    (and, when the drawing is turned, the title of the cluster that starts at `b`).
    """
    gap = NODE_SEP if w.real[a] and w.real[b] else DUMMY_SEP
    pa, pb = w.paths[a], w.paths[b]
    k = 0
    while k < min(len(pa), len(pb)) and pa[k] == pb[k]:
        k += 1
    if len(pa) > k or len(pb) > k:
        gap = max(gap, NODE_SEP)
        gap += (len(pa) - k + len(pb) - k) * CLUSTER_PAD
        if w.horizontal:
            gap += (len(pb) - k) * CLUSTER_TITLE
    return w.right[a] + gap + w.left[b]


def _place(
    ranks: list[list[int]], up: Sequence[Sequence[int]], down: Sequence[Sequence[int]], w: _Work
) -> list[float]:
    """x coordinates: pack each layer, then alternate down/up passes pulling each
    vertex towards the mean of its neighbours, with order and spacing kept."""
    nv = len(w.layer)
    xs = [0.0] * nv
    for rank in ranks:
        acc = 0.0
        for i, v in enumerate(rank):
            if i:
                acc += _sep(w, rank[i - 1], v)
            xs[v] = acc
    weights = [1.0 if w.real[v] else 4.0 for v in range(nv)]

    def settle(rank: list[int], nbrs: Sequence[Sequence[int]] | None) -> None:
        gaps = [0.0] + [_sep(w, rank[i - 1], rank[i]) for i in range(1, len(rank))]
        desired: list[float | None] = []
        for v in rank:
            ns = [*up[v], *down[v]] if nbrs is None else list(nbrs[v])
            if not ns and nbrs is not None:
                ns = [*up[v], *down[v]]
            desired.append(sum(xs[u] for u in ns) / len(ns) if ns else None)
        # Nodes with no neighbours at all sit snugly beside the previous one in the layer.
        filled: list[float] = []
        ws: list[float] = []
        for i, v in enumerate(rank):
            d = desired[i]
            if d is None:
                anchor = next((j for j in range(i - 1, -1, -1) if desired[j] is not None), None)
                if anchor is not None:
                    d = filled[anchor] + sum(gaps[anchor + 1 : i + 1])
                else:
                    after = next(
                        (j for j in range(i + 1, len(rank)) if desired[j] is not None), None
                    )
                    d = xs[v] if after is None else desired[after] or 0.0
                    if after is not None:
                        d -= sum(gaps[i + 1 : after + 1])
                ws.append(0.01)
            else:
                ws.append(weights[v])
            filled.append(d)
        placed = isotonic(filled, ws, gaps)
        for v, x in zip(rank, placed, strict=True):
            xs[v] = x

    for p in range(PLACEMENT_PASSES):
        if p % 2 == 0:
            for li in range(1, len(ranks)):
                settle(ranks[li], up)
        else:
            for li in range(len(ranks) - 2, -1, -1):
                settle(ranks[li], down)
    for rank in ranks:
        settle(rank, None)
    return xs


def _finish(
    nodes: Sequence[LayoutNode],
    used: Sequence[LayoutEdge],
    kinds: Sequence[RouteKind],
    ranks: list[list[int]],
    xs: list[float],
    w: _Work,
) -> Layout:
    """y coordinates from layer heights and gap sizes, node boxes, ports and edge routes."""
    n = w.n
    nranks = len(ranks)
    band_h = [0.0] * nranks
    for v in range(n):
        stacked = sum(used[ci].label_height + 2 for ci in w.self_loops.get(v, []))
        band_h[w.layer[v]] = max(band_h[w.layer[v]], nodes[v].height, stacked)
    # Gap g sits above layer g (gap 0 is the space above the first layer).
    gap_label_h = [0.0] * (nranks + 1)
    gap_used = [False] * (nranks + 1)
    for ci, kind in enumerate(kinds):
        chain = w.chains[ci]
        s = chain[0]
        if kind == "down":
            g = w.layer[s] + 1
        elif kind in ("up", "flat"):
            g = w.layer[s]
        else:
            continue
        gap_used[g] = True
        gap_label_h[g] = max(gap_label_h[g], used[ci].label_height)
    gap_h = [0.0] * (nranks + 1)
    # Room for cluster boxes: padding where a cluster starts or ends, and its title band.
    first_layer: dict[int, int] = {}
    last_layer: dict[int, int] = {}
    for v in range(n):
        for c in w.paths[v]:
            first_layer[c] = min(first_layer.get(c, w.layer[v]), w.layer[v])
            last_layer[c] = max(last_layer.get(c, w.layer[v]), w.layer[v])
    opens = [0] * nranks
    closes = [0] * nranks
    for v in range(n):
        li = w.layer[v]
        opens[li] = max(opens[li], sum(1 for c in w.paths[v] if first_layer[c] == li))
        closes[li] = max(closes[li], sum(1 for c in w.paths[v] if last_layer[c] == li))
    title_above = 0.0 if w.horizontal or w.title_below else CLUSTER_TITLE
    title_below = CLUSTER_TITLE if w.title_below and not w.horizontal else 0.0
    for g in range(nranks + 1):
        if 0 < g < nranks or gap_used[g]:
            gap_h[g] = max(MIN_GAP, gap_label_h[g] + 2 * LABEL_PAD + 16) if gap_used[g] else MIN_GAP
            if 0 < g < nranks:
                gap_h[g] += closes[g - 1] * (CLUSTER_PAD + title_below)
                gap_h[g] += opens[g] * (CLUSTER_PAD + title_above)
    band_top = [0.0] * nranks
    y = 0.0
    for li in range(nranks):
        y += gap_h[li]
        band_top[li] = y
        y += band_h[li]
    band_bot = [band_top[li] + band_h[li] for li in range(nranks)]
    gap_pairs = {(round(band_bot[li], 2), round(band_top[li + 1], 2)) for li in range(nranks - 1)}

    def rnd(v: float) -> float:
        return round(v, 2)

    boxes: list[Box] = []
    for v in range(n):
        nd = nodes[v]
        li = w.layer[v]
        boxes.append(
            Box(
                rnd(xs[v] - nd.width / 2),
                rnd(band_top[li] + (band_h[li] - nd.height) / 2),
                nd.width,
                nd.height,
            )
        )
    # Ports: attachments per (node, side), spread along the straight part of the side.
    attach: dict[tuple[int, str], list[tuple[float, int, int]]] = {}

    def want(v: int, side: str, toward: float, ci: int, end: int) -> None:
        attach.setdefault((v, side), []).append((toward, ci, end))

    for ci, kind in enumerate(kinds):
        chain = w.chains[ci]
        s, t = chain[0], chain[-1]
        if kind == "self":
            want(s, "bottom", float("inf"), ci, 0)
            want(s, "top", float("inf"), ci, 1)
        elif kind == "flat":
            want(s, "top", xs[t], ci, 0)
            want(t, "top", xs[s], ci, 1)
        else:
            out_side, in_side = ("bottom", "top") if kind == "down" else ("top", "bottom")
            want(s, out_side, xs[chain[1]], ci, 0)
            want(t, in_side, xs[chain[-2]], ci, 1)
    port: dict[tuple[int, int], float] = {}
    for (v, _side), items in sorted(attach.items()):
        items.sort()
        lo, hi = _span(nodes[v].shape, boxes[v], w.horizontal)
        for k, (_toward, ci, end) in enumerate(items):
            port[(ci, end)] = rnd(lo + (hi - lo) * (k + 1) / (len(items) + 1))
    routes: list[tuple[Route, float]] = []
    for ci, kind in enumerate(kinds):
        chain = w.chains[ci]
        s, t = chain[0], chain[-1]
        bs, bt = boxes[s], boxes[t]
        p0, p1 = port[(ci, 0)], port[(ci, 1)]
        pts: list[Point]
        mid: Point | None = None
        if kind == "self":
            # Loops nest: the first loop is outermost; labels stack in a column beside them.
            loops = w.self_loops[s]
            k, m = loops.index(ci), len(loops)
            far = bs.right + SELF_LOOP + (m - 1 - k) * SELF_STEP
            d0 = _depth(nodes[s].shape, bs, p0, w.horizontal)
            d1 = _depth(nodes[s].shape, bs, p1, w.horizontal)
            pts = [(p0, rnd(bs.bottom - d0)), (rnd(far), bs.cy), (p1, rnd(bs.y + d1))]
            lw, lh = used[ci].label_width, used[ci].label_height
            label = None
            if lw > 0:
                heights = [used[j].label_height + 2 for j in loops]
                top = bs.cy - (sum(heights) - 2) / 2 + sum(heights[:k])
                lx = bs.right + SELF_LOOP + (m - 1) * SELF_STEP + 4
                label = Box(rnd(lx), rnd(top), lw, lh)
            routes.append((Route(used[ci].source, used[ci].target, kind, tuple(pts), label), 0.0))
            continue
        if kind == "flat":
            li = w.layer[s]
            yy = rnd(band_top[li] - gap_h[li] / 2)
            pts = [(p0, bs.y), (p0, yy), (p1, yy), (p1, bt.y)]
            mid = ((p0 + p1) / 2, yy)
        else:
            pts = []
            if kind == "down":
                pts = [(p0, bs.bottom), (p0, band_bot[w.layer[s]])]
                for d in chain[1:-1]:
                    pts += [(rnd(xs[d]), band_top[w.layer[d]]), (rnd(xs[d]), band_bot[w.layer[d]])]
                pts += [(p1, band_top[w.layer[t]]), (p1, bt.y)]
            else:
                pts = [(p0, bs.y), (p0, band_top[w.layer[s]])]
                for d in chain[1:-1]:
                    pts += [(rnd(xs[d]), band_bot[w.layer[d]]), (rnd(xs[d]), band_top[w.layer[d]])]
                pts += [(p1, band_bot[w.layer[t]]), (p1, bt.bottom)]
            a, b = pts[1], pts[2]
            mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        pts[0] = _onto(pts[0], nodes[s].shape, bs, w.horizontal)
        pts[-1] = _onto(pts[-1], nodes[t].shape, bt, w.horizontal)
        dedup: list[Point] = []
        for p in pts:
            q = (rnd(p[0]), rnd(p[1]))
            if not dedup or dedup[-1] != q:
                dedup.append(q)
        curved = tuple(
            kind != "flat" and (min(a[1], b[1]), max(a[1], b[1])) in gap_pairs
            for a, b in pairwise(dedup)
        )
        route = Route(used[ci].source, used[ci].target, kind, tuple(dedup), None, curved)
        routes.append((route, mid[0] if mid else 0.0))
    placed = _place_labels(routes, used, kinds, w, band_top, gap_h)
    return _translate(nodes, boxes, placed, ranks, w)


def _turned(box: Box) -> Box:
    """The box as it is drawn when the layout is turned a quarter (x and y swapped)."""
    return Box(box.y, box.x, box.height, box.width)


def _span(shape: str, box: Box, horizontal: bool) -> tuple[float, float]:
    """`side_span` in layout coordinates (which run across the layers)."""
    return side_span(shape, _turned(box), True) if horizontal else side_span(shape, box)


def _depth(shape: str, box: Box, cross: float, horizontal: bool) -> float:
    """`outline_depth` in layout coordinates."""
    if horizontal:
        return outline_depth(shape, _turned(box), cross, True)
    return outline_depth(shape, box, cross)


def _onto(p: Point, shape: str, box: Box, horizontal: bool) -> Point:
    """Move an edge end on the top or bottom of a box onto the shape's outline."""
    d = _depth(shape, box, p[0], horizontal)
    if d == 0:
        return p
    if abs(p[1] - box.y) < 0.01:
        return (p[0], round(p[1] + d, 2))
    if abs(p[1] - box.bottom) < 0.01:
        return (p[0], round(p[1] - d, 2))
    return p


def _place_labels(
    routes: list[tuple[Route, float]],
    used: Sequence[LayoutEdge],
    kinds: Sequence[RouteKind],
    w: _Work,
    band_top: Sequence[float],
    gap_h: Sequence[float],
) -> list[Route]:
    """Centre labels in the gap their edge crosses first, then spread each gap's row."""
    rows: dict[int, list[tuple[float, int]]] = {}
    for ci, (_route, mid_x) in enumerate(routes):
        e = used[ci]
        if e.label_width <= 0 or kinds[ci] == "self":
            continue
        s = w.chains[ci][0]
        g = w.layer[s] + 1 if kinds[ci] == "down" else w.layer[s]
        rows.setdefault(g, []).append((mid_x - e.label_width / 2, ci))
    labels: dict[int, Box] = {}
    for g, row in sorted(rows.items()):
        row.sort()
        gaps = [0.0] + [used[row[i - 1][1]].label_width + 6 for i in range(1, len(row))]
        xs = isotonic([x for x, _ in row], [1.0] * len(row), gaps)
        gap_top = band_top[g] - gap_h[g] if g < len(band_top) else band_top[-1]
        centre_y = gap_top + gap_h[g] / 2
        for (_x, ci), x in zip(row, xs, strict=True):
            lh = used[ci].label_height
            labels[ci] = Box(round(x, 2), round(centre_y - lh / 2, 2), used[ci].label_width, lh)
    out: list[Route] = []
    for ci, (route, _mid) in enumerate(routes):
        if ci in labels:
            route = Route(
                route.source, route.target, route.kind, route.points, labels[ci], route.curved
            )
        out.append(route)
    return out


def _translate(
    nodes: Sequence[LayoutNode],
    boxes: list[Box],
    routes: list[Route],
    ranks: list[list[int]],
    w: _Work,
) -> Layout:
    """Shift everything so the drawing starts at the margin, and size it."""
    xs_all: list[float] = []
    ys_all: list[float] = []
    for b in boxes:
        xs_all += [b.x, b.right]
        ys_all += [b.y, b.bottom]
    for r in routes:
        for px, py in r.points:
            xs_all.append(px)
            ys_all.append(py)
        if r.label:
            xs_all += [r.label.x, r.label.right]
            ys_all += [r.label.y, r.label.bottom]
    for v, b in enumerate(boxes):
        xs_all.append(b.cx + w.right[v])
    dx = round(MARGIN - min(xs_all), 2)
    dy = round(MARGIN - min(ys_all), 2)

    def mv(b: Box) -> Box:
        return Box(round(b.x + dx, 2), round(b.y + dy, 2), b.width, b.height)

    moved = []
    for r in routes:
        shifted = Route(
            r.source,
            r.target,
            r.kind,
            tuple((round(px + dx, 2), round(py + dy, 2)) for px, py in r.points),
            mv(r.label) if r.label else None,
            r.curved,
        )
        moved.append(replace(shifted, path=_segments(shifted)))
    layers = tuple(tuple(nodes[v].id for v in rank if w.real[v]) for rank in ranks)
    return Layout(
        boxes={nodes[v].id: mv(boxes[v]) for v in range(len(nodes))},
        routes=tuple(moved),
        layers=layers,
        width=round(max(xs_all) + dx + MARGIN, 2),
        height=round(max(ys_all) + dy + MARGIN, 2),
    )


def _segments(route: Route) -> tuple[tuple[Point, ...], ...]:
    """The drawn path of a top-down route: straight inside layers, curves across
    gaps (bulging right on the way up), and self-loops as two curves beside the node."""
    p = route.points
    if route.kind == "self":
        (x0, y0), (fx, fy), (x2, y2) = p
        return (
            ((x0, y0 + 18), (fx, y0 + 10), (fx, fy)),
            ((fx, y2 - 10), (x2, y2 - 18), (x2, y2)),
        )
    if route.kind == "flat":
        return tuple((q,) for q in p[1:])
    bulge = 16.0 if route.kind == "up" else 0.0
    out: list[tuple[Point, ...]] = []
    for i, ((ax, ay), (bx, by)) in enumerate(pairwise(p)):
        if i < len(route.curved) and route.curved[i]:
            my = (ay + by) / 2
            out.append(((ax + bulge, my), (bx + bulge, my), (bx, by)))
        else:
            out.append(((bx, by),))
    return tuple(out)


def _orient(
    lay: Layout,
    direction: Direction,
    nodes: Sequence[LayoutNode],
    clusters: Sequence[LayoutCluster],
) -> Layout:
    """Turn or flip a top-down layout into `direction`, then box the clusters."""
    w, h = lay.width, lay.height

    def pt(p: Point) -> Point:
        x, y = p
        if direction == "BT":
            return (x, round(h - y, 2))
        if direction == "LR":
            return (y, x)
        if direction == "RL":
            return (round(h - y, 2), x)
        return (x, y)

    def bx(b: Box) -> Box:
        corners = [pt((b.x, b.y)), pt((b.right, b.bottom))]
        x0, x1 = sorted(c[0] for c in corners)
        y0, y1 = sorted(c[1] for c in corners)
        return Box(x0, y0, round(x1 - x0, 2), round(y1 - y0, 2))

    if direction == "TB":
        boxes: Mapping[str, Box] = lay.boxes
        routes = lay.routes
        width, height = w, h
    else:
        boxes = {k: bx(b) for k, b in lay.boxes.items()}
        routes = tuple(
            Route(
                r.source,
                r.target,
                r.kind,
                tuple(pt(q) for q in r.points),
                bx(r.label) if r.label else None,
                r.curved,
                tuple(tuple(pt(q) for q in seg) for seg in r.path),
            )
            for r in lay.routes
        )
        width, height = (h, w) if direction in ("LR", "RL") else (w, h)
    boxed = _cluster_boxes(boxes, clusters)
    if not boxed:
        return Layout(boxes, routes, lay.layers, width, height, {}, direction)
    # Cluster boxes may reach past the margin: shift everything so they fit.
    dx = max(0.0, MARGIN - min(b.x for b in boxed.values()))
    dy = max(0.0, MARGIN - min(b.y for b in boxed.values()))
    width = max(width + dx, max(b.right for b in boxed.values()) + dx + MARGIN)
    height = max(height + dy, max(b.bottom for b in boxed.values()) + dy + MARGIN)

    def mv(b: Box) -> Box:
        return Box(round(b.x + dx, 2), round(b.y + dy, 2), b.width, b.height)

    def mp(p: Point) -> Point:
        return (round(p[0] + dx, 2), round(p[1] + dy, 2))

    return Layout(
        boxes={k: mv(b) for k, b in boxes.items()},
        routes=tuple(
            Route(
                r.source,
                r.target,
                r.kind,
                tuple(mp(q) for q in r.points),
                mv(r.label) if r.label else None,
                r.curved,
                tuple(tuple(mp(q) for q in seg) for seg in r.path),
            )
            for r in routes
        ),
        layers=lay.layers,
        width=round(width, 2),
        height=round(height, 2),
        clusters={k: mv(b) for k, b in boxed.items()},
        direction=direction,
    )


def _cluster_boxes(boxes: Mapping[str, Box], clusters: Sequence[LayoutCluster]) -> dict[str, Box]:
    """Each cluster's box: around its members and nested clusters, with padding and
    a title band on top, at least as wide as the title. Empty clusters get no box."""
    out: dict[str, Box] = {}
    children: dict[str, list[LayoutCluster]] = {}
    for c in clusters:
        if c.parent is not None:
            children.setdefault(c.parent, []).append(c)

    def build(c: LayoutCluster, seen: frozenset[str]) -> Box | None:
        parts = [boxes[m] for m in c.members if m in boxes]
        for child in children.get(c.id, []):
            if child.id not in seen:
                inner = build(child, seen | {child.id})
                if inner is not None:
                    parts.append(inner)
        if not parts:
            return None
        x0 = min(b.x for b in parts) - CLUSTER_PAD
        x1 = max(b.right for b in parts) + CLUSTER_PAD
        y0 = min(b.y for b in parts) - CLUSTER_PAD - CLUSTER_TITLE
        y1 = max(b.bottom for b in parts) + CLUSTER_PAD
        need = c.title_width + 2 * CLUSTER_PAD
        if x1 - x0 < need:
            grow = (need - (x1 - x0)) / 2
            x0, x1 = x0 - grow, x1 + grow
        box = Box(round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2))
        out[c.id] = box
        return box

    for c in clusters:
        if c.id not in out:
            build(c, frozenset([c.id]))
    return out
