"""The design review of a tenant (`mlplatform report TENANT`), generated from one run's records.

records.py   what the run recorded: MLflow (params, metrics, tags, artifacts), the step records,
             runs/<run>/summary.json, bench/results.json, loop.json, the GE validation results
stats.py     bootstrap confidence intervals, A/B sample sizes, capacity from CPU ms per request
sections.py  the stages every task shares (requirements, data, features, monitoring, experiment)
classification.py, ranking.py  each task's sections (metrics, model, serving), chosen through the
             task registry (tasks/: `report_sections()`), never by comparing the task's name
figures.py   the plots (matplotlib, PNG)
render.py    Markdown and a self-contained HTML page (plots as data: URIs, no network)
build.py     records -> ReportData (model.py) -> files

Every number shown comes from a record; a figure the records lack is said to be missing.
"""
