"""Graph-ordering primitives for the layered layout.

Cycle breaking, longest-path layering, connected components, barycentre
ordering with adjacent swaps, and the isotonic solver used for x placement.
Vertices are integers; every function is pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

SWEEPS = 12

# ---------------------------------------------------------------- layering


def break_cycles(
    n: int, edges: Sequence[tuple[int, int]], loops: Sequence[bool], first: int
) -> list[bool]:
    """Mark edges kept for layering: forward edges, minus those closing a cycle in a DFS."""
    keep = [s != t and not loop for (s, t), loop in zip(edges, loops, strict=True)]
    out: list[list[int]] = [[] for _ in range(n)]
    for i, (s, _t) in enumerate(edges):
        if keep[i]:
            out[s].append(i)
    state = [0] * n  # 0 new, 1 on stack, 2 done
    starts = [first, *[v for v in range(n) if v != first]]
    for root in starts:
        if state[root]:
            continue
        state[root] = 1
        stack: list[tuple[int, int]] = [(root, 0)]
        while stack:
            v, k = stack[-1]
            if k < len(out[v]):
                stack[-1] = (v, k + 1)
                ei = out[v][k]
                w = edges[ei][1]
                if state[w] == 1:
                    keep[ei] = False
                elif state[w] == 0:
                    state[w] = 1
                    stack.append((w, 0))
            else:
                state[v] = 2
                stack.pop()
    return keep


def longest_path_layers(
    n: int, edges: Sequence[tuple[int, int]], keep: Sequence[bool], first: int
) -> list[int]:
    """Longest-path layers, then sources pulled down next to their successors."""
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, (s, t) in enumerate(edges):
        if keep[i]:
            succs[s].append(t)
            preds[t].append(s)
    indeg = [len(p) for p in preds]
    order: list[int] = []
    ready = [v for v in range(n) if indeg[v] == 0]
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    layer = [0] * n
    for v in order:
        for w in succs[v]:
            layer[w] = max(layer[w], layer[v] + 1)
    for v in reversed(order):
        if v != first and not preds[v] and succs[v]:
            layer[v] = max(layer[v], min(layer[w] for w in succs[v]) - 1)
    touched = [bool(preds[v] or succs[v]) for v in range(n)]
    for s, t in edges:
        touched[s] = touched[t] = True
    top = max(layer, default=0)
    for v in range(n):
        if v != first and not touched[v]:
            layer[v] = top
    return layer


# ---------------------------------------------------------------- ordering


def crossings(upper: Sequence[int], lower_nbrs: Sequence[Sequence[int]], pos: Sequence[int]) -> int:
    """Count edge crossings between one layer and the next (pairs of inverted ends)."""
    pairs = sorted((pos[u], pos[w]) for u in upper for w in lower_nbrs[u])
    count = 0
    for i in range(len(pairs)):
        a1, b1 = pairs[i]
        for j in range(i + 1, len(pairs)):
            a2, b2 = pairs[j]
            if a2 > a1 and b2 < b1:
                count += 1
    return count


def order(
    ranks: list[list[int]],
    up: Sequence[Sequence[int]],
    down: Sequence[Sequence[int]],
    comp: Sequence[int],
    paths: Sequence[tuple[int, ...]] | None = None,
) -> list[list[int]]:
    """Barycentre sweeps down and up; keep the ordering with fewest crossings.

    Vertices stay grouped by connected component (`comp`), so each component
    occupies a contiguous run of every layer. `paths` gives each vertex its
    chain of nested clusters (outermost first); members of a cluster stay
    contiguous too, the cluster placed by the mean barycentre of its members.
    """
    nv = len(up)
    pos = [0] * nv
    chain: Sequence[tuple[int, ...]] = paths if paths is not None else [()] * nv

    def index() -> None:
        for rank in ranks:
            for i, v in enumerate(rank):
                pos[v] = i

    def total() -> int:
        return sum(crossings(ranks[i], down, pos) for i in range(len(ranks) - 1))

    def sort_rank(rank: list[int], nbrs: Sequence[Sequence[int]]) -> None:
        bary: dict[int, float] = {}
        for v in rank:
            ns = nbrs[v]
            bary[v] = sum(pos[u] for u in ns) / len(ns) if ns else float(pos[v])
        sums: dict[tuple[int, ...], list[float]] = {}
        for v in rank:
            for depth in range(1, len(chain[v]) + 1):
                acc = sums.setdefault(chain[v][:depth], [0.0, 0.0])
                acc[0] += bary[v]
                acc[1] += 1
        keys: dict[int, tuple[float, ...]] = {}
        for v in rank:
            parts: list[float] = [float(comp[v])]
            for depth in range(1, len(chain[v]) + 1):
                total_b, count = sums[chain[v][:depth]]
                parts += [total_b / count, float(chain[v][depth - 1])]
            parts += [bary[v], float(pos[v])]
            keys[v] = tuple(parts)
        rank.sort(key=lambda v: keys[v])
        for i, v in enumerate(rank):
            pos[v] = i

    index()
    best = [list(r) for r in ranks]
    best_count = total()
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        seq = range(1, len(ranks)) if downward else range(len(ranks) - 2, -1, -1)
        for li in seq:
            sort_rank(ranks[li], up if downward else down)
        transpose(ranks, up, down, comp, pos, chain)
        count = total()
        if count < best_count:
            best_count = count
            best = [list(r) for r in ranks]
        if best_count == 0:
            break
    return best


def transpose(
    ranks: list[list[int]],
    up: Sequence[Sequence[int]],
    down: Sequence[Sequence[int]],
    comp: Sequence[int],
    pos: list[int],
    paths: Sequence[tuple[int, ...]] | None = None,
) -> None:
    """Swap neighbours in a layer while that strictly lowers crossings (bounded passes).

    Only neighbours of the same component and the same cluster are swapped.
    """

    def cross(u: int, v: int) -> int:
        # Crossings between u's and v's edges when u sits left of v.
        count = 0
        for nbrs in (up, down):
            for a in nbrs[u]:
                for b in nbrs[v]:
                    if pos[a] > pos[b]:
                        count += 1
        return count

    for _ in range(4):
        improved = False
        for rank in ranks:
            for i in range(len(rank) - 1):
                u, v = rank[i], rank[i + 1]
                if comp[u] != comp[v]:
                    continue
                if paths is not None and paths[u] != paths[v]:
                    continue
                if cross(v, u) < cross(u, v):
                    rank[i], rank[i + 1] = v, u
                    pos[u], pos[v] = i + 1, i
                    improved = True
        if not improved:
            return


# ---------------------------------------------------------------- placement


def isotonic(
    desired: Sequence[float], weights: Sequence[float], gaps: Sequence[float]
) -> list[float]:
    """Closest positions (weighted least squares) keeping order and minimum gaps.

    `gaps[i]` is the minimum distance between item i-1 and item i (gaps[0] unused).
    Pool-adjacent-violators on positions shifted by cumulative gaps.
    """
    offsets: list[float] = []
    acc = 0.0
    for i in range(len(desired)):
        if i:
            acc += gaps[i]
        offsets.append(acc)
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for i, d in enumerate(desired):
        blocks.append([(d - offsets[i]) * weights[i], weights[i], 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][2] += c
    out: list[float] = []
    for s, w, c in blocks:
        out.extend([s / w] * int(c))
    return [y + o for y, o in zip(out, offsets, strict=True)]


def components(nv: int, chains: Sequence[Sequence[int]], seen: Mapping[int, int]) -> list[int]:
    """Connected component of every vertex, numbered by first appearance in `seen` order."""
    parent = list(range(nv))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for chain in chains:
        for a, b in pairwise(chain):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    number: dict[int, int] = {}
    out = [0] * nv
    for v in sorted(range(nv), key=lambda v: seen[v]):
        out[v] = number.setdefault(find(v), len(number))
    return out
