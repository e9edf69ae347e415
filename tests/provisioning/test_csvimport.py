"""``callrouter import-people``: rows added through the API's checks, each bad row reported by line
and column and skipped, invitations queued, and the command's exit status and output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callrouter.cli import main
from provisioning.csvimport import CsvImportError, import_people
from provisioning.digest import ha1_all
from provisioning.events import EventBus
from provisioning.orgfile import apply_org
from provisioning.service import Services
from provisioning.store import Device, Number, Person, Store
from provisioning.tables_access import AuditEvent, OutboxMessage

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example-org.yaml"
HEADER = "email,firstName,lastName,location,extension,phoneNumber,sipUsername,password,deviceType\n"


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        apply_org(opened, EXAMPLE)
        yield opened


def _csv(tmp_path: Path, rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(header + rows)
    return path


def test_good_rows_are_added_and_bad_rows_reported(store, tmp_path):
    free = _free_austin_number(store)
    path = _csv(tmp_path, (
        f"dora@acme.example,Dora,Diaz,Austin,2001,{free},dora,dora-password,SOFT_CLIENT\n"
        "erin@acme.example,Erin,Ely,Austin,2002,,,,\n"
        "not-an-address,F,G,Austin,,,,,\n"                    # line 4
        "gus@acme.example,Gus,H,Atlantis,,,,,\n"              # line 5
        "hal@acme.example,Hal,I,Austin,2001,,,,\n"            # line 6: Dora has 2001
        "alice@acme.example,Al,J,Austin,,,,,\n"                # line 7: an existing person's address
        "ivy@acme.example,Ivy,K,Austin,2003,,alice,ivy-password,\n"  # line 8: alice's SIP username
        "\n"
        "jo@acme.example,Jo,L,Austin,2004,,jo,short,\n"       # line 10: password too short
    ))
    bus = EventBus()
    published: list = []
    bus.subscribe(published.extend)
    seen: list[int] = []
    report = import_people(Services(store, events=bus), path, progress=seen.append)
    assert report.added == 2 and sum(seen) == 8
    assert [(e.line, e.field) for e in report.errors] == [
        (4, "email"), (5, "location"), (6, "extension"), (7, "email"), (8, "sipUsername"), (10, "password")]
    assert "not an e-mail address" in report.errors[0].reason and "Atlantis" in report.errors[1].reason
    assert str(report.errors[2]).startswith("line 6: extension: extension 2001 is in use")

    with store.session() as s:
        dora = s.scalars(select(Person).where(Person.email == "dora@acme.example")).one()
        assert (dora.extension, dora.phone_number) == ("2001", free)
        assert s.get(Number, free).owner_id == dora.id
        device = s.scalars(select(Device).where(Device.sip_username == "dora")).one()
        assert device.device_type == "SOFT_CLIENT" and device.ha1() == ha1_all("dora", "acme-corp", "dora-password")
        assert s.scalar(select(func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.to.in_(["dora@acme.example", "erin@acme.example"]))) == 2
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "person.created",
                                                                           AuditEvent.actor_name == "system:import-people")) == 2
    assert sorted(e.entity for e in published) == ["number", "person", "person"]


def _free_austin_number(store: Store) -> str:
    with store.session() as s:
        return s.scalars(select(Number.e164).where(Number.owner_id.is_(None), Number.is_main.is_(False))
                         .order_by(Number.e164)).first()


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty file"),
    ("email,first\n", "unknown column(s) first; missing column(s) firstName, lastName, location"),
])
def test_unusable_files_are_refused_whole(store, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CsvImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_people(Services(store), path)


def test_command_reports_rows_and_exits_1_on_errors(store_url, tmp_path, capsys):
    with Store.open(store_url) as store:
        apply_org(store, EXAMPLE)
    path = _csv(tmp_path, "kim@acme.example,Kim,M,Austin,3001,,,,\nbad,X,Y,Austin,,,,,\n")
    assert main(["import-people", str(path), "--store", store_url]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == f"imported {path}: 1 added, 1 rows with errors"
    assert err.strip() == f"{path}: line 3: email: not an e-mail address: 'bad'"
    # The same file again: Kim is there already, so that row is now the error.
    assert main(["import-people", str(path), "--store", store_url]) == 1
    assert "kim@acme.example is already a person's address" in capsys.readouterr().err


def test_command_refuses_a_missing_file_with_status_2(store_url, tmp_path):
    result = subprocess.run([sys.executable, "-m", "callrouter", "import-people", str(tmp_path / "none.csv"),
                             "--store", store_url], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "cannot read file" in result.stderr and "Traceback" not in result.stderr
