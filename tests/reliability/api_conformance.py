"""schemathesis with every check against a running server's own /openapi.json: the Python API's
equivalent of `schemathesis run URL/openapi.json --checks all` (the CLI sets the same project
options, schemathesis/cli/commands/run/__init__.py, and runs the same engine,
schemathesis/engine: the examples, coverage, fuzzing and stateful phases), counted as the CLI
counts them (schemathesis.engine.statistic.Statistic.unique_failures_map)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Conformance:
    cases: int = 0
    operations: int = 0
    failures: list[str] = field(default_factory=list)  # one line per unique failure
    errors: list[str] = field(default_factory=list)  # the engine's own errors (not a verdict)


def run_all_checks(base_url: str, max_examples: int = 25, seed: int = 42) -> Conformance:
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import events, from_schema
    from schemathesis.engine.statistic import Statistic

    config = SchemathesisConfig()  # defaults only: no schemathesis.toml discovered from the cwd
    project = config.projects.override
    project.checks.update(included_check_names=["all"])
    project.generation.update(max_examples=max_examples, deterministic=True, database="none")
    project.update(workers=1, request_timeout=30)
    project.seed = seed
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    stats, out = Statistic(), Conformance()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            stats.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError):
            out.errors.append(f"{event.label}: {type(event.value).__name__}: {str(event.value)[:300]}")
        elif isinstance(event, events.FatalError):
            out.errors.append(f"fatal: {type(event.exception).__name__}: {event.exception}")
        elif isinstance(event, events.EngineFinished) and event.failures:
            stats.record_run_check_failures(event.failures, label="run")
    out.cases, out.operations = stats.total_cases, len(stats.tested_operations)
    for failure, where in stats.unique_failures_map.items():
        label = next((lbl for lbl, groups in stats.failures.items() if where in groups), where)
        out.failures.append(f"{label}: {failure.title}: {failure.message.splitlines()[0] if failure.message else ''}")
    return out
