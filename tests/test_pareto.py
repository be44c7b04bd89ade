"""Pareto fronts (maximize top-1, minimize MACs) on constructed points, duplicates and ties included."""

import itertools
import math
import random

import pytest

from svdbench.pareto import dominates, front_indices, front_line, fronts_by, hypervolume


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


def test_hypervolume_by_hand():
    # points (x, y) both maximised, ref (0, 80). Sweep by decreasing x:
    #   x in [1, 2]:   only (2, 85) reaches it          -> 1.0 * (85 - 80) = 5
    #   x in [0.5, 1]: best of (2, 85), (1, 90) is 90   -> 0.5 * (90 - 80) = 5
    #   x in [0, 0.5]: best of all three is 92          -> 0.5 * (92 - 80) = 6
    # total 16 (the same as the union of [0,2]x[80,85] = 10, [0,1]x[85,90] = 5, [0,0.5]x[90,92] = 1)
    assert hypervolume([(1, 90), (2, 85), (0.5, 92)], (0, 80)) == pytest.approx(16.0)
    assert hypervolume([], (0, 80)) == 0.0


def test_hypervolume_of_a_single_point_is_its_rectangle():
    assert hypervolume([(3.0, 7.0)], (0.0, 0.0)) == pytest.approx(21.0)
    assert hypervolume([(2.5, 91.0)], (0.0, 85.0)) == pytest.approx(2.5 * 6.0)


def test_points_outside_the_reference_region_contribute_nothing():
    base = [(1.0, 90.0), (2.0, 85.0)]
    outside = [(-1.0, 99.0), (0.0, 99.0), (5.0, 80.0), (5.0, 70.0), (math.nan, 95.0), (3.0, math.inf)]
    assert hypervolume(base + outside, (0.0, 80.0)) == pytest.approx(hypervolume(base, (0.0, 80.0)))
    assert hypervolume(outside, (0.0, 80.0)) == 0.0


def test_duplicates_and_dominated_points_change_nothing():
    base = [(1.0, 90.0), (2.0, 85.0), (0.5, 92.0)]
    hv = hypervolume(base, (0.0, 80.0))
    assert hypervolume(base + base + [(1.0, 90.0)], (0.0, 80.0)) == pytest.approx(hv)
    assert hypervolume(base + [(0.9, 89.0), (2.0, 81.0), (0.5, 90.0), (1.0, 85.0)], (0.0, 80.0)) == pytest.approx(hv)
    rng = random.Random(1)
    pts = [(rng.uniform(-1, 4), rng.uniform(70, 100)) for _ in range(30)]
    assert hypervolume(pts, (0.0, 80.0)) == pytest.approx(hypervolume(rng.sample(pts, len(pts)), (0.0, 80.0)))
    # only the front matters: drop every point another one dominates (in the x, y maximised sense)
    front = [p for p in pts if not any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in pts)]
    assert hypervolume(front, (0.0, 80.0)) == pytest.approx(hypervolume(pts, (0.0, 80.0)))


def test_front_line_draws_the_shown_coordinates_of_the_front_selected_on_points():
    selected_on = [(90.0, 100.0), (80.0, 200.0), (95.0, 400.0)]  # (top1, macs): the middle one is dominated
    shown = [(88.0, 100.0), (99.0, 200.0), (91.0, 400.0)]  # e.g. test top-1 of the same rows
    assert front_line(selected_on, shown) == ([100.0, 400.0], [88.0, 91.0])
