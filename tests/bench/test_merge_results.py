"""Re-measuring some bench sections alone keeps the others, each dated by the run that measured it."""

from __future__ import annotations

from bench.run import merge_results


def test_skipped_sections_come_from_the_earlier_run_with_their_dates():
    old = {"date": "2026-11-01", "serving": {"p99": 30.0}, "drift": {"s": 0.9}, "letor": {"status": "skipped"}}
    new = {"date": "2026-11-21", "serving": {"p99": 8.0}, "drift": {"status": "skipped"},
           "letor": {"status": "skipped"}}
    merged = merge_results(old, new, {"drift", "letor"})
    assert merged["serving"] == {"p99": 8.0} and merged["drift"] == {"s": 0.9}
    assert merged["letor"] == {"status": "skipped"}  # nothing to keep
    assert merged["section_dates"] == {"serving": "2026-11-21", "drift": "2026-11-01"}
    # a third run keeps the per-section dates of the merged one
    again = merge_results(merged, {"date": "2026-11-22", "drift": {"s": 0.8}, "serving": {"status": "skipped"}},
                          {"serving"})
    assert again["section_dates"]["serving"] == "2026-11-21" and again["section_dates"]["drift"] == "2026-11-22"
    assert again["serving"] == {"p99": 8.0}


def test_each_section_keeps_the_machine_it_ran_on():
    slow, fast = {"cpu": "EPYC", "os": "v669"}, {"cpu": "EPYC", "os": "v782"}
    old = {"date": "d1", "machine": slow, "serving": {"p99": 30.0}, "drift": {"s": 0.9}}
    merged = merge_results(old, {"date": "d2", "machine": fast, "serving": {"p99": 8.0}, "drift": {"status": "skipped"}},
                           {"drift"})
    assert merged["section_machines"] == {"serving": fast, "drift": slow}
    # a merged file without the record (older results) says nothing it does not know
    legacy = {k: v for k, v in merged.items() if k != "section_machines"} | {"section_dates": {"serving": "d0"}}
    again = merge_results(legacy, {"date": "d3", "machine": fast, "drift": {"s": 1.0}, "serving": {"status": "skipped"}},
                          {"serving"})
    assert again["section_machines"] == {"serving": None, "drift": fast}  # serving's machine: unknown


def test_a_machine_without_a_demo_run_keeps_the_last_demo_figures():
    old = {"date": "2026-11-01", "demo": {"status": "ok", "total_s": 240}}
    missing = {"date": "2026-11-21", "demo": {"status": "no runs/*/summary.json: run `make demo` first"}}
    assert merge_results(old, missing, set())["demo"] == old["demo"]
    newer = {"date": "2026-11-21", "demo": {"status": "ok", "total_s": 230}}
    assert merge_results(old, newer, set())["demo"] == newer["demo"]
