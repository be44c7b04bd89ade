"""Pareto fronts (maximize top-1, minimize MACs) on constructed points, duplicates and ties included."""

import itertools
import math
import random

from svdbench.pareto import dominates, front_indices, front_line, front_mask, fronts_by


def brute_force(points):
    return {i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)} - {
        i for i, p in enumerate(points) if not all(math.isfinite(v) for v in p)
    }


def test_dominance_is_weak_and_irreflexive():
    assert dominates((80, 100), (70, 200))
    assert dominates((80, 100), (80, 200))  # tie in top-1, cheaper
    assert dominates((80, 100), (70, 100))  # tie in MACs, more accurate
    assert not dominates((80, 100), (80, 100))  # a duplicate does not dominate its copy
    assert not dominates((80, 200), (70, 100))  # a trade-off
    assert not dominates((math.nan, 1), (0, 2)) and not dominates((90, 1), (math.nan, 2))


def test_simple_front_sorted_by_macs():
    pts = [(90.0, 400.0), (85.0, 200.0), (80.0, 300.0), (70.0, 100.0), (60.0, 150.0)]
    assert front_indices(pts) == [3, 1, 0]
    assert front_mask(pts) == [True, True, False, True, False]
    assert front_line(pts) == ([100.0, 200.0, 400.0], [70.0, 85.0, 90.0])


def test_ties_keep_only_the_better_of_the_two():
    same_top1 = [(80.0, 300.0), (80.0, 200.0)]
    assert front_indices(same_top1) == [1]
    same_macs = [(70.0, 200.0), (75.0, 200.0)]
    assert front_indices(same_macs) == [1]


def test_duplicates_are_all_on_the_front_and_drawn_once():
    pts = [(80.0, 200.0), (70.0, 100.0), (80.0, 200.0), (60.0, 300.0), (80.0, 200.0)]
    assert front_indices(pts) == [1, 0, 2, 4]
    assert front_line(pts) == ([100.0, 200.0], [70.0, 80.0])
    # a duplicate of a dominated point stays off
    assert front_indices([(60.0, 300.0), (60.0, 300.0), (70.0, 100.0)]) == [2]


def test_nan_and_inf_never_on_the_front():
    pts = [(math.nan, 10.0), (50.0, math.inf), (40.0, 100.0), (99.0, math.nan)]
    assert front_indices(pts) == [2]
    assert front_indices([]) == [] and front_line([]) == ([], [])


def test_matches_brute_force_on_random_grids_with_many_ties():
    rng = random.Random(0)
    for _ in range(200):
        pts = [(float(rng.randint(0, 5)), float(rng.randint(1, 6))) for _ in range(rng.randint(1, 12))]
        assert set(front_indices(pts)) == brute_force(pts), pts
        macs = [pts[i][1] for i in front_indices(pts)]
        assert macs == sorted(macs)


def test_fronts_by_key():
    pts = [(70.0, 100.0), (80.0, 200.0), (75.0, 100.0), (60.0, 50.0), (85.0, 300.0)]
    keys = ["a", "a", "b", "b", "b"]
    assert fronts_by(pts, keys) == {"a": [0, 1], "b": [3, 2, 4]}
    overall = front_indices(pts)
    assert overall == [3, 2, 1, 4]
    # every overall front point is on its own group's front
    per = fronts_by(pts, keys)
    assert all(i in per[keys[i]] for i in overall)


def test_front_is_invariant_to_input_order():
    pts = [(90.0, 400.0), (85.0, 200.0), (80.0, 300.0), (70.0, 100.0), (85.0, 200.0)]
    expected = sorted(pts[i] for i in front_indices(pts))
    for perm in itertools.permutations(range(len(pts))):
        p = [pts[i] for i in perm]
        assert sorted(p[i] for i in front_indices(p)) == expected
