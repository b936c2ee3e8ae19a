"""The `settle` command line."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from contextlib import contextmanager
from typing import Annotated, Iterator

import rich.progress
import typer
from rich.console import Console
from rich.markup import escape

from contracts.catalogue import ConsentSignal, SplitRecord, WorkRecord
from contracts.errors import SettlementError
from contracts.licence import LicenceContract
from contracts.loading import load_inputs
from contracts.parties import BalanceBroughtForward, Licensee, RightsHolder
from contracts.policy import DistributionPolicy, RevenueReport
from contracts.usage import UsageRecord
from settlement.progress import Progress

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Exact, auditable royalty settlement for AI licences.")
SCHEMAS = {
    "contract": LicenceContract, "policy": DistributionPolicy, "licensee": Licensee, "holder": RightsHolder,
    "work": WorkRecord, "split": SplitRecord, "consent": ConsentSignal, "revenue": RevenueReport,
    "balance": BalanceBroughtForward, "usage": UsageRecord,
}
CLOCK = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def fail(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", markup=True,
                                               highlight=False)
    raise typer.Exit(2)


Inputs = Annotated[Path, typer.Argument(help="input folder (docs/formats.md)")]
PeriodOption = Annotated[str, typer.Option("--period", help="the month to settle, YYYY-MM")]
OutOption = Annotated[Path, typer.Option("--out", help="output folder")]
ClockOption = Annotated[str, typer.Option("--clock", help="the run's time, an input: YYYY-MM-DDTHH:MM:SSZ")]
UsageOption = Annotated[list[str] | None, typer.Option(
    "--usage", help="usage logs to read instead of INPUTS/usage: a path or glob, e.g. 'logs/2026-10/**/*.parquet'; "
                    "repeatable")]
QuietOption = Annotated[bool, typer.Option("--quiet", help="print nothing on success")]
LedgerOption = Annotated[str | None, typer.Option(
    "--ledger", envvar="SETTLE_LEDGER",
    help="the ledger database the run is posted to: a file path (SQLite) or a postgresql://user@host/db URL")]
CorrectsOption = Annotated[str | None, typer.Option(
    "--corrects", help="post this run as an adjustment of that posted run (same period, new inputs)")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="why the adjustment corrects the run")]
OpeningOption = Annotated[bool, typer.Option(
    "--opening-balances", help="with --corrects of the ledger's first month: balances.csv corrects its opening "
                               "balances")]


@app.command()
def run(inputs: Inputs, period: PeriodOption, out: OutOption, clock: ClockOption, usage: UsageOption = None,
        quiet: QuietOption = False, ledger: LedgerOption = None, corrects: CorrectsOption = None,
        reason: ReasonOption = None, opening: OpeningOption = False) -> None:
    """Settle one period: lines, statements, invoices and reports, posted to the ledger.

    The run is posted to the ledger database (--ledger) once and never changed; other inputs
    for a settled period are refused unless posted as an adjustment (--corrects RUN_ID
    --reason TEXT). An adjustment of the ledger's first month may correct the opening
    balances it brought forward (--opening-balances)."""
    from settlement.posting import settled_and_posted

    if ledger is None and (corrects is not None or reason is not None or opening):
        fail("--corrects, --reason and --opening-balances post an adjustment to a ledger: give --ledger too")
    summary = carried_out("run", lambda loaded, month, progress: settled_and_posted(
        loaded, month, clock, out, progress, ledger, corrects, reason, opening), inputs, period, out, clock, usage,
        quiet)
    if not quiet:
        print_summary(summary, out)


@app.command()
def preview(inputs: Inputs, period: PeriodOption, out: OutOption, clock: ClockOption, usage: UsageOption = None,
            quiet: QuietOption = False) -> None:
    """Price one period without settling it: invoices, refused rows and unlicensed use.

    What each licensee would be charged, by the same code and to the same bytes as the
    invoices of `settle run`; nothing is allocated or paid."""
    from settlement.exports import export_preview
    from settlement.run import preview as run_preview

    def previewed(loaded, month, progress) -> dict:
        result = run_preview(loaded, month, clock, progress)
        progress.stage("writing outputs")
        return export_preview(result, out)

    summary = carried_out("preview", previewed, inputs, period, out, clock, usage, quiet)
    if not quiet:
        print_preview(summary, out)


def carried_out(command: str, step, inputs: Path, period: str, out: Path, clock: str, usage: list[str] | None,
                quiet: bool) -> dict:
    """`step(inputs, period, progress)` on the loaded inputs, with the options checked, a
    progress bar on a terminal, and any failure as one error line; its summary.
    `command`: what the error line calls it (run, preview)."""
    from settlement.exports import check_folder
    from settlement.intake import Period

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        fail(f"--period {period!r}: expected a month such as 2026-10")
    if not real_clock(clock):
        fail(f"--clock {clock!r}: expected a UTC time such as 2026-11-05T09:00:00Z")
    try:
        check_folder(out, preview=command == "preview")
        # interactive: a terminal that draws (not TERM=dumb), where rich's bar leaves no stray blank line
        with StageProgress(enabled=not quiet and Console().is_interactive) as progress:
            progress.stage("loading contracts and catalogue")
            return step(load_inputs(inputs, usage), Period.parse(period), progress)
    except SettlementError as error:
        fail(str(error))
    except OSError as error:  # the machine's, not the inputs': a full disk, an output path that cannot be made
        fail(stopped_by(command, error, out))


@contextmanager
def reported(what: str) -> Iterator[None]:
    """A user's mistake (a SettlementError) or the machine's (an OSError: a file that cannot be
    read, a full disk) as one error line, for the commands that write no output folder."""
    try:
        yield
    except SettlementError as error:
        fail(str(error))
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        fail(f"the {what} stopped on a system error ({error.strerror or error}{where})")


def real_clock(clock: str) -> bool:
    """`clock` is spelled as CLOCK and names a real instant (not 2026-02-30 or 25:00)."""
    if not re.fullmatch(CLOCK, clock):
        return False
    try:
        dt.datetime.strptime(clock, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def stopped_by(command: str, error: OSError, out: Path) -> str:
    """One line for a `command` (run, preview) stopped by the system: what failed, where, and
    what to do with the output folder, which has no manifest.json and so is refused next time."""
    where = f": {error.filename}" if error.filename else ""
    return (f"the {command} stopped on a system error ({error.strerror or error}{where}); anything written to "
            f"{out} is incomplete: delete it before running again")


class StageProgress(Progress):
    """A rich progress bar on a terminal: the stage and its time so far; while the usage
    logs are read, a bar over the files with the rows read and rows per second, and after
    that how many were read at what rate; in a stage that goes a part at a time, a bar over
    the parts. Draws nothing when disabled (--quiet, or output that is not a terminal)."""

    def __init__(self, enabled: bool):
        self.display = rich.progress.Progress(
            rich.progress.SpinnerColumn(), rich.progress.TextColumn("{task.description}"),
            rich.progress.BarColumn(), rich.progress.TextColumn("{task.fields[detail]}"),
            rich.progress.TimeElapsedColumn(), transient=True, disable=not enabled)
        self.task = None
        self.stage_started = time.monotonic()
        self.rows_read = ""  # once the usage logs are read: how many rows, at what rate

    def __enter__(self) -> "StageProgress":
        self.display.start()
        return self

    def __exit__(self, *exc) -> None:
        self.display.stop()

    def stage(self, name: str) -> None:
        """A new stage: a task of its own, so that its time starts at 0 and its bar pulses
        until it counts parts (rich's Progress.reset keeps the last stage's total)."""
        self.stage_started = time.monotonic()
        if self.task is not None:
            self.display.remove_task(self.task)
        self.task = self.display.add_task(name, total=None, detail=self.rows_read)
        self.display.refresh()  # drawn now, however soon the next stage comes

    def reading(self, files_done: Fraction, files: int, rows_read: int) -> None:
        rate = rows_read / max(time.monotonic() - self.stage_started, 1e-9)
        self.rows_read = f"read {rows_read:,} rows at {rate:,.0f} rows/s"
        self.display.update(self.task, total=files, completed=files_done,
                            detail=f"{int(files_done)}/{files} files, {rows_read:,} rows, {rate:,.0f} rows/s")
        self.display.refresh()

    def step(self, done: int, total: int, unit: str) -> None:
        self.display.update(self.task, total=total, completed=done, detail=f"{done}/{total} {unit}, {self.rows_read}")
        self.display.refresh()


def rows_line(rows: dict) -> str:
    """Where the usage rows went, as the run and the preview print it."""
    return (f"  usage rows: {rows['rows_read']} read = {rows['accepted']} accepted + {rows['suspense']} suspense + "
            f"{rows['unlicensed']} unlicensed + {rows['quarantined']} quarantined + {rows['duplicates']} duplicates")


def print_summary(summary: dict, out: Path) -> None:
    console = Console(soft_wrap=True, highlight=False, markup=False)
    console.print(f"Settled {summary['period']} as {summary['run_id']} (rules v{summary['rules_version']})")
    console.print(rows_line(summary["rows"]))
    for currency, t in summary["currencies"].items():
        brought = f" + brought forward {t['brought_forward']}" if Decimal(t["brought_forward"]) else ""
        console.print(f"  {currency}: charged {t['charged']}{brought} = payable {t['payable']} + carried forward "
                      f"{t['carried_forward']} + commission {t['commission']} + withholding {t['withholding']} "
                      f"+ suspense {t['suspense']}")
    for warning in summary["warnings"]:
        console.print(f"  warning: {warning}")
    if "adjustment" in summary:
        console.print(f"  adjusts {summary['adjustment']['corrects']}: {summary['adjustment']['reason']} "
                      f"(changes per holder: {out / 'adjustments.csv'})")
    console.print(f"  statements: {out / 'statements'}/  invoices: {out / 'invoices'}/  summary: {out / 'summary.json'}")
    console.print(f"  {summary.get('posted', 'ledger: not posted (no --ledger given)')}")


def print_preview(summary: dict, out: Path) -> None:
    console = Console(soft_wrap=True, highlight=False, markup=False)
    console.print(f"Preview of {summary['period']} (not settled; a run of these inputs is {summary['run_id']})")
    console.print(rows_line(summary["rows"]))
    for licensee, amounts in summary["licensees"].items():
        console.print(f"  {licensee}: charged " + ", ".join(f"{amount} {currency}"
                                                            for currency, amount in amounts.items()))
    for warning in summary["warnings"]:
        console.print(f"  warning: {warning}")
    console.print(f"  invoices: {out / 'invoices'}/  quarantine: {out / 'quarantine.csv'}  "
                  f"summary: {out / 'summary.json'}")


@app.command()
def replay(run_out: Annotated[Path, typer.Argument(help="the run's output folder (its manifest.json pins every file)")],
           inputs: Inputs, usage: UsageOption = None, ledger: Annotated[str | None, typer.Option(
               "--ledger", envvar="SETTLE_LEDGER",
               help="check that the run is posted there with this manifest (needed to replay an adjustment)")] = None,
           out: Annotated[Path | None, typer.Option(
               "--out", help="keep the replayed outputs in this new or empty folder (default: a temporary one)")] = None,
           quiet: QuietOption = False) -> None:
    """Settle a run again from its inputs: every output byte for byte as its manifest pins it?

    Exit code 1 names each file that is not."""
    from settlement.replay import replay as replayed

    with reported("replay"), StageProgress(enabled=not quiet and Console().is_interactive) as progress:
        result = replayed(run_out, lambda: load_inputs(inputs, usage), ledger, out, progress)
    print_replay(result, quiet)


def print_replay(result, quiet: bool) -> None:
    """Say what the replay found; exit code 1 when anything differs."""
    pinned = result.pinned
    if result.problems:
        console = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
        console.print(f"error: run {pinned.run_id} does not replay:")
        for problem in result.problems:
            console.print(f"  {problem}")
        if result.replayed and result.changed_outputs:
            console.print("  settled again from the inputs, the run gives every file as its manifest pins it: "
                          "the files named were changed after the run")
        raise typer.Exit(1)
    if quiet:
        return
    console = Console(soft_wrap=True, highlight=False, markup=False)
    console.print(f"Replayed {pinned.run_id} ({pinned.summary['period']}, {pinned.kind}): {result.inputs} inputs as "
                  f"pinned, {result.outputs} outputs and manifest.json identical byte for byte")
    if result.ledger:
        console.print(f"  ledger: {result.ledger}")
    elif pinned.preview:
        console.print("  ledger: not looked in (a preview is never posted)")


@app.command()
def check(run_out: Annotated[Path, typer.Argument(help="the run's output folder")]) -> None:
    """Check a run's invariants from its output files alone, without the engine.

    The manifest, both allocation levels, every line's net, the statements, conservation
    per currency and the usage rows' accounting; exit code 1 names each that does not hold,
    with its figures."""
    from settlement.check import check as checked

    with reported("check"):
        pinned, findings = checked(run_out)
    console = Console(soft_wrap=True, highlight=False, markup=False)
    console.print(f"Checked {pinned.run_id} ({pinned.summary['period']}, {pinned.kind}) from its files:")
    for holds in findings.passed:
        console.print(f"  ✓ {holds}")
    if findings.failed:
        errors = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
        for problem in findings.failed:
            errors.print(f"  ✗ {problem}")
        errors.print(f"error: {findings.broken} invariant{'s' if findings.broken != 1 else ''} of run "
                     f"{pinned.run_id} do{'es' if findings.broken == 1 else ''} not hold")
        raise typer.Exit(1)


@app.command()
def explain(run_out: Annotated[Path, typer.Argument(help="the run's output folder")], inputs: Inputs,
            holder: Annotated[str, typer.Option("--holder", help="the rights holder's id")],
            work: Annotated[str | None, typer.Option("--work", help="only the holder's lines on this work")] = None,
            contract: Annotated[str | None, typer.Option("--contract", help="only this contract's lines")] = None,
            use_type: Annotated[str | None, typer.Option("--use-type", help="only this use type's lines")] = None
            ) -> None:
    """Why did a holder get this amount for a work? Each step, by the published rules.

    Each step of each line is worked out again from the run's files and checked; exit code 1
    if any figure is not what the rules give."""
    from settlement.explain import explain as explained

    with reported("explanation"):
        result = explained(run_out, inputs, holder, work, contract, use_type)
    console = Console(soft_wrap=True, highlight=False, markup=False)
    for line in result.lines:
        console.print(line)
    if result.mismatches:
        Console(stderr=True, soft_wrap=True, highlight=False, markup=False).print(
            f"error: {result.mismatches} figure{'s' if result.mismatches != 1 else ''} of the run "
            f"{'are' if result.mismatches != 1 else 'is'} not what the rules give (marked ✗)")
        raise typer.Exit(1)


ledger_app = typer.Typer(no_args_is_help=True, help="Read and check the ledger database of posted runs.")
app.add_typer(ledger_app, name="ledger")
LedgerArgument = Annotated[str, typer.Option("--ledger", envvar="SETTLE_LEDGER",
                                             help="a file path (SQLite) or a postgresql://user@host/db URL")]


@ledger_app.command("list")
def ledger_list(ledger: LedgerArgument) -> None:
    """Every posted run, in the order posted: period, kind, run id, what it corrects and why, totals."""
    from settlement import posting

    try:
        engine = posting.opened(ledger, create=False)
        with posting.database_errors(engine, "reading the runs"):
            runs = [(record, posting.posted_totals(engine, record.run_id)) for record in posting.chain(engine)]
    except SettlementError as error:
        fail(str(error))
    console = Console(soft_wrap=True, highlight=False, markup=False)
    for record, totals in runs:
        console.print(f"{record.sequence} {record.period} {record.kind} {record.run_id}"
                      + (f" corrects {record.corrects}: {record.reason}" if record.corrects else "")
                      + f" (hash {record.hash})")
        for total in totals:
            console.print("  " + str(total["currency"]) + ": " + ", ".join(
                f"{name} {shown_amount(total[name], str(total['currency']))}" for name in posting.TOTALS))


def shown_amount(amount, currency: str) -> str:
    """An amount of the ledger as a decimal; what is not an integer of minor units, as it is."""
    from settlement.money import format_minor

    try:
        return format_minor(amount, currency) if type(amount) is int else repr(amount)
    except SettlementError:  # a currency code that is not ISO 4217
        return str(amount)


@ledger_app.command("balances")
def ledger_balances(ledger: LedgerArgument, corrects: Annotated[str | None, typer.Option(
        "--corrects", help="what this run brought forward, for a run that corrects it")] = None,
                    out: Annotated[Path | None, typer.Option(
        "--out", help="the file to write, e.g. INPUTS/balances.csv (standard output if not given)")] = None) -> None:
    """Write balances.csv: what the ledger carries forward to the next run it posts.

    Per holder and currency, the opening balances (what the ledger's first month, as it
    stands, brought forward) and, for the run each period stands as, what it carried
    forward less what it brought forward: the next run's balances.csv, which `settle run
    --ledger` requires to be exactly this. With --corrects RUN_ID, what that run brought
    forward, which a run correcting it brings forward again (but for a correction of the
    ledger's first month given --opening-balances, which corrects the opening balances). A
    ledger of no run has none to write: its first run takes any balances.csv as its
    opening balances."""
    from settlement import posting

    with reported("balances command"):
        engine = posting.opened(ledger, create=False)
        if corrects is not None:
            balances, source = posting.brought_forward_by(engine, corrects), f"that run {corrects} brought forward"
        else:
            found = posting.outstanding(engine)
            if found is None and out is not None:
                fail(f"the ledger holds no run, so nothing was written to {out}: the ledger's first run takes any "
                     "balances.csv as its opening balances")
            balances, runs = found or (None, 0)
            source = f"carried forward by the {runs} run{'s' if runs != 1 else ''} the ledger's periods stand as"
        rows = [] if balances is None else list(balances.iter_rows())
        if out is None:
            sys.stdout.write(posting.balances_text(rows))
            return
        out.write_text(posting.balances_text(rows), encoding="utf-8", newline="\n")
    Console(soft_wrap=True, highlight=False, markup=False).print(
        f"{out}: {len(rows)} balance{'s' if len(rows) != 1 else ''} {source}")


@ledger_app.command("verify")
def ledger_verify(ledger: LedgerArgument, last: Annotated[str | None, typer.Option(
        "--last", help="a run's hash you kept (settle run prints it): the chain must still hold that run")] = None
                  ) -> None:
    """Check the hash chain: every run's record, totals and balances as they were posted,
    and with --last, that no run was removed from its end."""
    from settlement import posting

    try:
        runs, last, problems = posting.verify(posting.opened(ledger, create=False), last)
    except SettlementError as error:
        fail(str(error))
    if problems:
        fail(f"the ledger's hash chain is broken: {'; '.join(problems)}")
    Console(soft_wrap=True, highlight=False, markup=False).print(
        f"ledger verified: {runs} run{'s' if runs != 1 else ''}, chain intact, last hash {last}")


@app.command()
def schema(name: Annotated[str, typer.Argument(help="one of: " + ", ".join(SCHEMAS))]) -> None:
    """Print the JSON Schema of an input model."""
    if name not in SCHEMAS:
        fail(f"unknown schema {name!r}; expected one of {', '.join(SCHEMAS)}")
    sys.stdout.write(json.dumps(SCHEMAS[name].model_json_schema(), indent=2) + "\n")


if __name__ == "__main__":  # pragma: no cover
    app()
