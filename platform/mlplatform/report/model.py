"""The typed content of a report: what render.py writes and what the tests compare with records."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class Timing(BaseModel):
    """A measured duration and where it came from: a timing without its source is not shown."""

    what: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    source: str = Field(min_length=1, description="bench run (date, CPU, section) or in-process measurement")


class Table(BaseModel):
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


class Figure(BaseModel):
    file: str  # PNG file name, beside the Markdown page
    caption: str


class Link(BaseModel):
    """A file of the run the page points to (the raw Data Docs): a relative link in the Markdown, a
    file:// link in the HTML page, which is read on the machine that ran it."""
    label: str
    path: str  # absolute


class Section(BaseModel):
    key: str
    title: str
    paragraphs: list[str] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    timings: list[Timing] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)  # "p" / "t" / "l" as said: a text stays beside its table

    def say(self, *text: str) -> "Section":
        self.paragraphs.extend(text)
        self.order.extend("p" * len(text))
        return self

    def table(self, columns: list[str], rows: list[list], caption: str = "") -> "Section":
        self.tables.append(Table(columns=columns, rows=[[str(c) for c in r] for r in rows], caption=caption))
        self.order.append("t")
        return self

    def link(self, label: str, path) -> "Section":
        self.links.append(Link(label=label, path=str(Path(path).resolve())))
        self.order.append("l")
        return self

    def blocks(self) -> list[str | Table | Link]:
        """Paragraphs, tables and links in the order they were added (the timings' table last)."""
        items = {"p": iter(self.paragraphs), "t": iter(self.tables), "l": iter(self.links)}
        return [next(items[kind]) for kind in self.order]


class Provenance(BaseModel):
    tenant: str
    task: str
    commit: str
    seed: str
    machine: str
    date: str
    run_id: str  # the pipeline run
    mlflow_run_id: str
    model: str  # name and version
    sources: list[str]  # the record files read


class ReportData(BaseModel):
    provenance: Provenance
    sections: list[Section]
    metrics: dict[str, float] = Field(default_factory=dict, description="the MLflow metrics shown, as recorded")

    def timings(self) -> list[Timing]:
        return [t for s in self.sections for t in s.timings]

    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]
