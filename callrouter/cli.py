"""The ``callrouter`` command: serve, apply, import-people, demo.

Operator mistakes (a bad settings file, a bad organisation file, an unreachable store) end
in one line on stderr naming the file, line and key, and exit status 2; a traceback would
bury that line.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from collections.abc import Sequence

from callrouter.settings import ConfigError, Settings, load_settings
from provisioning.orgfile import OrgFileError, apply_org
from provisioning.store import Store, StoreError

EXIT_USAGE = 2

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callrouter", description="Self-hosted SIP calling service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run SIP (UDP, TCP, TLS), RTP and the provisioning API")
    serve.add_argument("--config", required=True, metavar="FILE", help="settings file (YAML)")

    apply = commands.add_parser("apply", help="apply a declarative organisation file to the store")
    apply.add_argument("file", metavar="FILE", help="organisation file (YAML)")
    target = apply.add_mutually_exclusive_group()
    target.add_argument("--config", metavar="FILE", help="settings file whose store.url to use")
    target.add_argument("--store", metavar="URL", help="store URL (sqlite:///path or postgresql://...)")

    people = commands.add_parser("import-people", help="add people in bulk from a CSV file")
    people.add_argument("file", metavar="FILE.csv", help="email,firstName,lastName,location[,extension,phoneNumber,"
                                                         "sipUsername,password,deviceType]")
    target = people.add_mutually_exclusive_group()
    target.add_argument("--config", metavar="FILE", help="settings file whose store.url (and mail) to use")
    target.add_argument("--store", metavar="URL", help="store URL (sqlite:///path or postgresql://...)")
    people.add_argument("--organization", metavar="NAME", help="needed when the store holds several organisations")

    commands.add_parser("demo", help="run a scripted call end to end")
    return parser


def _serve(settings: Settings) -> int:
    logging.basicConfig(format=LOG_FORMAT)
    # Set separately: basicConfig ignores its level when the root logger already has handlers.
    logging.getLogger().setLevel(settings.log.level)
    # Alembic narrates every plugin it loads at INFO; migrations that ran are still logged
    # by callrouter's own start-up lines.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    # Imported here so apply and demo do not pay for (or depend on) the SIP and HTTP stack.
    from callrouter import app

    try:
        result = app.run(settings)
        if inspect.iscoroutine(result):
            import asyncio

            asyncio.run(result)
    except KeyboardInterrupt:
        pass
    return 0


def _apply(path: str, store_url: str) -> int:
    with Store.open(store_url) as store:
        summary = apply_org(store, path)
    print(f"applied {path}: {summary}")
    return 0


def _import_people(path: str, settings: Settings, store_url: str, organization: str | None) -> int:
    """Exit 0 when every row was added, 1 when some rows were reported and skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from provisioning.csvimport import CsvImportError, count_rows, import_people
    from provisioning.mail import Mailer, SmtpConfig
    from provisioning.service import Services

    m = settings.mail
    with Store.open(store_url) as store:
        # Invitations are queued in the outbox; a running server with SMTP sends them.
        smtp = SmtpConfig(m.smtp_host, m.smtp_port, m.sender, m.timeout) if m.smtp_host else None
        services = Services(store, mailer=Mailer(store, smtp))
        columns = [TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        try:
            with Progress(*columns, transient=True) as progress:
                task = progress.add_task("people", total=count_rows(path) or None)
                report = import_people(services, path, organization=organization,
                                       progress=lambda n: progress.advance(task, n))
        except CsvImportError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
    for error in report.errors:
        print(f"{path}: {error}", file=sys.stderr)
    print(f"imported {path}: {report.added} added, {len(report.errors)} rows with errors")
    return 1 if report.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(load_settings(args.config))
        if args.command == "apply":
            if args.store:
                url = args.store
            elif args.config:
                url = load_settings(args.config).store.url
            else:
                url = Settings().store.url
            return _apply(args.file, url)
        if args.command == "import-people":
            settings = load_settings(args.config) if args.config else Settings()
            return _import_people(args.file, settings, args.store or settings.store.url, args.organization)
        from callrouter import demo

        return demo.run()
    except (ConfigError, OrgFileError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
