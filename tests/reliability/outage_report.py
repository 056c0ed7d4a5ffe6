"""The generated section of docs/reliability.md: the outage test's figures, rewritten by each run
of tests/reliability/test_outages.py between the two markers (nothing else in the file changes)."""

from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- BEGIN GENERATED: outages (tests/reliability/test_outages.py writes this section; do not edit) -->"
END = "<!-- END GENERATED: outages -->"


def section(f: dict) -> str:
    err = f["online_store_errors"]
    # the mark is taken when the restart call returns (port open): a 200 can come a moment before it
    back = f["resumed_after_redis_back_s"]
    after = f"{back} s after its return" if back > 0 else "as soon as it was up (before the restart call returned)"
    rows = [
        ("load", f"{f['rate_rps']} req/s open loop (bench/loadgen.py), one row per request, for {f['seconds']} s"),
        ("requests sent", f"{f['requests']:,}"),
        ("200 (scored)", f"{f['ok']:,}; each with the healthy server's score ({f['wrong_scores']} differ)"),
        ("503 `{\"error\"}`", f"{f['errors_503']:,}, all while Redis was down"
                              + (f" or within {back} s of its return" if back > 0 else "") + "; slowest answered in "
                              f"{f['max_503_latency_ms']:,} ms"),
        ("unanswered (hang)", f"{f['unanswered']}"),
        ("longest outage seen by callers", f"{f['longest_outage_s']} s (first failed request to the next 200)"),
        ("serving back after Redis returned", f"{after}, by itself (no restart)"),
        ("slowest request of the run", f"{f['max_latency_ms']:,} ms (from its scheduled start)"),
        ("prediction log rows vs 200s", f"{f['prediction_log_rows']:,} rows for {f['ok']:,} requests answered 200"),
        ("prediction log (in PostgreSQL) while PostgreSQL was down",
         f"{f['prediction_log_write_errors']:,} failed flushes, counted; their rows kept in memory and written after, none dropped"),
        ("`mlplatform_online_store_errors_total`", f"+{err['redis']} over the Redis outage (one per 503), "
                                                 f"+{err['postgres'] - err['redis']} over PostgreSQL's, "
                                                 f"+{err['mlflow'] - err['postgres']} over the MLflow server's"),
        ("PostgreSQL down: a reload (a model server starting)", f"exit 2: `{f['reload_while_postgres_down']}`"),
        ("PostgreSQL back", f"the running MLflow server answers registry calls again after "
                            f"{f['registry_answers_after_postgres_back_s']} s"),
        ("MLflow server down: the register step", f"fails: `{f['register_while_mlflow_down']}`"),
        ("MLflow server back: the register step again", f["register_after"]),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (f"{BEGIN}\n\nMeasured {f['measured']} on {f['nproc']} cores (a shared machine: latencies are "
            f"not the platform's, see benchmarks.md). Kill order: Redis (down "
            f"{round(f['marks_s']['redis_back'] - f['marks_s']['redis_killed'], 1)} s), PostgreSQL, the MLflow "
            f"server, each SIGKILLed and restarted on the same port and data.\n\n"
            f"| what | figure |\n|---|---|\n{table}\n\n{END}")


def write_docs(path: Path, figures: dict) -> None:
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise AssertionError(f"{path}: the generated section's markers are missing")
    path.write_text(text[:start] + section(figures) + text[end + len(END):])
