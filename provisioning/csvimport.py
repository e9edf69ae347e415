"""``callrouter import-people FILE.csv``: add people in bulk, with a per-row error report.

Columns (header row required, any order, case-insensitive): ``email``, ``firstName``,
``lastName``, ``location`` (name or id), and optionally ``extension``, ``phoneNumber``,
``sipUsername``, ``password``, ``deviceType`` (DESK_PHONE or SOFT_CLIENT). A row with a
mistake is reported (line, column, reason) and skipped; the other rows are added. Rows are
added in batches, each one unit of work through the same checks as ``POST /v1/people`` (audit
entries, change events, invitation mail); the checks' lookups are made once per batch, which
keeps 10,000 people within seconds.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from provisioning.api.framework import ApiError
from provisioning.api.people import PeopleWriter, PersonIn
from provisioning.service import Services, system_actor
from provisioning.store import Location, Organization

BATCH = 1000
REQUIRED = ("email", "firstName", "lastName", "location")
OPTIONAL = ("extension", "phoneNumber", "sipUsername", "password", "deviceType")


class _RowProblem(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


class CsvImportError(Exception):
    """The file as a whole cannot be imported (unreadable, no header, unknown organisation)."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}" if self.field else f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    added: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.added + len(self.errors)


def _read(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvImportError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise CsvImportError(f"{path}: empty file; the first row must name the columns") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise CsvImportError(f"{path}:1: cannot read the header: {exc}") from None
    canonical = {name.lower(): name for name in REQUIRED + OPTIONAL}
    columns = [canonical.get(h.strip().lower(), h.strip()) for h in header]
    unknown = [c for c in columns if c not in canonical.values()]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing:
        handle.close()
        what = "; ".join(filter(None, [f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                                       f"missing column(s) {', '.join(missing)}" if missing else ""]))
        raise CsvImportError(f"{path}:1: {what} (columns: {', '.join(REQUIRED + OPTIONAL)})")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            try:
                for values in reader:
                    if not any(v.strip() for v in values):
                        continue
                    yield reader.line_num, dict(zip(columns, values))
            except (csv.Error, UnicodeDecodeError) as exc:
                yield reader.line_num, {"__error__": str(exc)}

    return columns, rows()


def _spec(values: dict[str, str], locations: dict[str, str]) -> PersonIn:
    """The row as the API's PersonIn (the same validation), or ValueError/ValidationError."""
    if "__error__" in values:
        raise ValueError(f"unreadable row: {values['__error__']}")
    clean = {k: v.strip() for k, v in values.items() if v is not None and v.strip() != ""}
    location = clean.pop("location", "")
    body: dict = {k: clean[k] for k in ("email", "firstName", "lastName", "extension", "phoneNumber") if k in clean}
    if location not in locations and location not in locations.values():
        raise _RowProblem("location", f"no location named {location!r}" if location else "a location is required")
    body["locationId"] = locations.get(location, location)
    if "sipUsername" in clean or "password" in clean:
        device = {"sipUsername": clean.get("sipUsername", ""), "password": clean.get("password", "")}
        if "deviceType" in clean:
            device["type"] = clean["deviceType"]
        body["devices"] = [device]
    return PersonIn.model_validate(body, by_alias=True, by_name=False)


_CSV_FIELDS = {"locationId": "location", "devices.0.sipUsername": "sipUsername", "devices.0.password": "password",
               "devices.0.type": "deviceType", "devices": "sipUsername"}


def _column(field_path: str) -> str:
    return _CSV_FIELDS.get(field_path, field_path)


def import_people(services: Services, path: str | Path, *, organization: str | None = None,
                  progress: Callable[[int], None] | None = None) -> ImportReport:
    """Add the people of a CSV file; returns how many were added and what was wrong with the rest."""
    path = Path(path)
    _columns, rows = _read(path)
    with services.store.session() as s:
        orgs = s.scalars(select(Organization).where(Organization.name == organization) if organization
                         else select(Organization).limit(2)).all()
        if not orgs:
            raise CsvImportError(f"no organisation {organization!r} in the store" if organization
                               else "the store has no organisation yet (apply an organisation file first)")
        if len(orgs) > 1:
            raise CsvImportError("the store holds several organisations; name one with --organization")
        org_id = orgs[0].id
        locations = {name: id_ for name, id_ in s.execute(select(Location.name, Location.id)
                                                           .where(Location.org_id == org_id))}
    report = ImportReport()
    batch: list[tuple[int, PersonIn]] = []

    def flush() -> None:
        if batch:
            _add_batch(services, org_id, batch, report)
            if progress is not None:
                progress(len(batch))
            batch.clear()

    for line, values in rows:
        try:
            batch.append((line, _spec(values, locations)))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field_path = ".".join(str(p) for p in first["loc"])
            report.errors.append(RowError(line, _column(field_path), first["msg"].removeprefix("Value error, ")))
            if progress is not None:
                progress(1)
        except ValueError as exc:
            report.errors.append(RowError(line, getattr(exc, "field", ""), str(exc)))
            if progress is not None:
                progress(1)
        if len(batch) >= BATCH:
            flush()
    flush()
    report.errors.sort(key=lambda e: e.line)
    return report


def _add_batch(services: Services, org_id: str, batch: list[tuple[int, PersonIn]], report: ImportReport) -> None:
    added = 0
    errors: list[RowError] = []
    try:
        with services.unit_of_work(system_actor("import-people", org_id)) as uow:
            org = uow.session.get(Organization, org_id)
            assert org is not None
            writer = PeopleWriter(uow, org)
            writer.prefetch([spec for _line, spec in batch])
            for line, spec in batch:
                try:
                    writer.add(spec)
                except ApiError as exc:
                    errors.append(RowError(line, _column(exc.field or ""), exc.detail))
                else:
                    added += 1
    except IntegrityError as exc:
        # Someone else took an address, extension or number between our checks and the commit;
        # nothing of this batch is stored.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        report.errors.extend(RowError(line, "", f"not added (its batch conflicted with a concurrent change: "
                                                f"{reason}); import the file again") for line, _ in batch)
        return
    report.added += added
    report.errors.extend(errors)


def count_rows(path: str | Path) -> int:
    """Data rows in the file (for a progress bar's total); 0 when unreadable."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    except (OSError, csv.Error, UnicodeDecodeError):
        return 0
