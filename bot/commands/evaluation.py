"""`askloop learn`, `askloop golden add|list`, `askloop eval`: learning, its gate, its measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bot.cli_app import app, console, err_console, expected, fail, friendly_errors, get_services, group, who

expected("feedback.datasets:DatasetError", "retrieval.learned:PayloadError")

golden_app = group("Golden questions: known good sources every proposal is checked against.", no_args_is_help=True)
app.add_typer(golden_app, name="golden")


@app.command()
def learn(
    user: Annotated[str, typer.Option("--user", "-u", help="Who creates the proposal (default: your OS user name).")] = "",
    strategy: Annotated[str, typer.Option(help="askloop (default) or doc-boost (baseline).")] = "askloop",
    as_json: Annotated[bool, typer.Option("--json", help="Print the proposal and its evaluation as JSON.")] = False,
) -> None:
    """Build a proposal from validated feedback, evaluate it, and show what it would change."""
    from bot.progress import Phases, first_load, interruptible
    from bot.screens import evaluation_view, shorten_paths
    from feedback.learn_loop import describe
    from feedback.learning import STRATEGIES

    if strategy not in STRATEGIES or strategy == "none":
        fail(f"unknown strategy {strategy!r}: use askloop or doc-boost")
    services = get_services()
    phases = Phases(err_console, enabled=not as_json)
    with friendly_errors(), phases.running():
        services.loop  # the feedback database first: a missing or outdated one fails in one line, at once
        if not as_json:
            first_load(services, err_console)
        outcome = interruptible(lambda: services.loop.learn(who(user), strategy, progress=phases.step))
    if as_json:
        print(json.dumps(describe(outcome), ensure_ascii=False))
        return
    proposal = outcome.proposal
    if proposal is None:
        fail(f"nothing to propose: {outcome.reason}")
    if not outcome.new:
        console.print(f"[dim]nothing new: {escape(outcome.reason)}[/]")
    console.print(f"[bold]Proposal p{proposal.id}[/] ({proposal.status})")
    console.print(escape(shorten_paths(proposal.summary)))
    console.print()
    console.print(evaluation_view(proposal.evaluation))
    next_step = (
        f"approve (it becomes the live version) with `askloop review approve p{proposal.id}`"
        if proposal.status == "evaluated"
        else f"it failed the gate: approving needs `askloop review approve p{proposal.id} --override` (audited)"
        if proposal.status == "failing" else f"details: `askloop review show p{proposal.id}`"
    )
    console.print(f"\n[dim]{next_step}[/]")


@golden_app.command("add")
def golden_add(
    question: Annotated[str, typer.Argument(help="The question, as people ask it.")],
    documents: Annotated[list[str], typer.Argument(help="Documents that answer it: path, URL, title or id.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Who adds it (default: your OS user name).")] = "",
) -> None:
    """Add a golden question: every proposal must not make it worse."""
    services = get_services()
    with friendly_errors():
        golden = services.loop.add_golden(question, list(documents), who(user))
    console.print(f"golden question g{golden.id} added: “{escape(golden.question)}” → {escape(', '.join(golden.doc_ids))}")


@golden_app.command("list")
def golden_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The golden set (manual ones and those from approved corrections)."""
    services = get_services()
    with friendly_errors():
        golden = services.loop.golden_set()
    if as_json:
        print(json.dumps([g.as_dict() for g in golden], ensure_ascii=False))
        return
    if not golden:
        console.print("no golden questions yet: add one with `askloop golden add \"QUESTION\" DOCUMENT`")
        return
    from rich.table import Table

    from bot.screens import short_path

    table = Table("id", "question", "documents", "origin", "added by")
    for g in golden:
        table.add_row(f"g{g.id}", escape(g.question), escape(", ".join(short_path(d) for d in g.doc_ids)), g.origin,
                      escape(g.added_by))
    console.print(table)


def render_eval_table(result: dict[str, Any]) -> Any:
    """One row per strategy, one "before → after" cell per metric (fits 80 columns)."""
    from rich.table import Table

    from feedback.metrics import METRICS

    table = Table(title=f"{result['dataset']} — test questions, before → after")
    table.add_column("strategy", no_wrap=True)
    for metric in METRICS:
        table.add_column(metric, justify="right", no_wrap=True)
    for name, figures in result["strategies"].items():
        row = [name]
        for metric in METRICS:
            b, a = figures["before"][metric], figures["after"][metric]
            colour = "green" if a > b + 1e-9 else "red" if a < b - 1e-9 else "dim"
            row.append(f"{b:.3f} → [{colour}]{a:.3f}[/]")
        table.add_row(*row)
    return table


def render_diagnosis(diagnosis: dict[str, Any], dataset: str) -> Any:
    """`--diagnose`: hit@1 of the nearest-feedback rule, search, their ceiling and the engine per
    part of the test questions, where the engine's misses fall (one row per place), then what
    each of its limits costs (the learned version with that limit loosened)."""
    from rich.console import Group
    from rich.table import Table

    parts = diagnosis["parts"]
    figures = Table(title=f"{dataset} — what is left (hit@1, test questions)")
    figures.add_column("", no_wrap=True)
    for part in parts:
        figures.add_column(f"{part.replace('_', ' ')} (n={parts[part]['n']})", justify="right", no_wrap=True)
    labels = {"nearest_feedback": "nearest-feedback rule", "search": "plain search",
              "ceiling": "ceiling (either right)", diagnosis["strategy"]: f"{diagnosis['strategy']} after learning"}
    for key, label in labels.items():
        figures.add_row(label, *(f"{parts[p]['hit@1'][key]:.3f}" for p in parts))
    misses = Table(title=f"where {diagnosis['strategy']}'s misses fall")
    misses.add_column("", no_wrap=True)
    for part in parts:
        misses.add_column(part.replace("_", " "), justify="right", no_wrap=True)
    rules = sorted({rule for p in parts.values() for rule in p["misses"]["blocked"]})
    rows = [("blocked by " + rule, lambda m, r=rule: m["blocked"].get(r, 0)) for rule in rules]
    rows += [(place.replace("_", " "), lambda m, k=place: m[k]) for place in ("out_of_reach", "ranked_second", "other")]
    rows.append(("total", lambda m: m["total"]))
    for label, value in rows:
        misses.add_row(label, *(str(value(parts[p]["misses"])) for p in parts))
    looser = Table(title=f"what {diagnosis['strategy']}'s limits cost: hit@1 with one loosened (questions gained/lost)")
    looser.add_column("", no_wrap=True)
    for part in parts:
        looser.add_column(part.replace("_", " "), justify="right", no_wrap=True)
    looser.add_row(f"{diagnosis['strategy']} as learned", *(f"{parts[p]['hit@1'][diagnosis['strategy']]:.3f}" for p in parts))
    for variant in diagnosis.get("looser", []):
        cells = []
        for p in parts:
            f = variant["parts"][p]
            colour = "green" if f["gained"] > f["lost"] else "red" if f["lost"] > f["gained"] else "dim"
            cells.append(f"{f['hit@1']:.3f} [{colour}](+{f['gained']}/−{f['lost']})[/]")
        looser.add_row(variant["variant"], *cells)
    return Group(figures, misses, looser)


@app.command("eval")
def eval_command(
    dataset_dir: Annotated[Path, typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv (+ qrels/feedback.tsv).")],
    simulate_feedback: Annotated[bool, typer.Option("--simulate-feedback", help="Simulate users asking, voting, correcting.")] = False,
    noise: Annotated[float, typer.Option(min=0.0, max=1.0, help="Probability of flipping each simulated vote.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for the noise.")] = 0,
    strategy: Annotated[str, typer.Option(help="Comma list of: none, doc-boost, askloop.")] = "none,doc-boost,askloop",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Draw before/after per strategy into this PNG.")] = None,
    home: Annotated[Path | None, typer.Option(help="Data dir to use (default: a fresh temporary one).")] = None,
    feedback_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="Share of needs given feedback (the rest measure harm).")] = 1.0,
    correction_rate: Annotated[float, typer.Option(help="Share of 👎 that carry a correction, 0 to 1 (the rest are bare votes).")] = 1.0,
    diagnose: Annotated[bool, typer.Option("--diagnose", help="After learning: what is left to gain, where misses fall.")] = False,
) -> None:
    """Measure retrieval on a BEIR data set, before and after (simulated) feedback."""
    from bot.cli_app import get_settings
    from bot.progress import Phases
    from feedback.evaluation import EvalOptions, plot_results, run_eval
    from feedback.gate import GateConfig

    settings = get_settings()
    strategies = [s.strip() for s in strategy.split(",") if s.strip()]
    options = EvalOptions(
        simulate=simulate_feedback, noise=noise, seed=seed, strategies=strategies, home=home,
        feedback_share=feedback_share, correction_rate=correction_rate, diagnose=diagnose,
        gate=GateConfig(tolerance=settings.gate_tolerance, recent=settings.gate_recent_questions),
    )
    try:
        options.check()
    except ValueError as exc:
        fail(str(exc))

    from bot.services import eval_world_opener

    phases = Phases(err_console, enabled=not as_json)
    with friendly_errors(), phases.running():
        result = run_eval(dataset_dir, options, open_world=eval_world_opener(settings), log=phases.step)
    if plot is not None:
        plot_results(result, plot)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    console.print(render_eval_table(result))
    counts = result["counts"]
    if simulate_feedback:
        console.print(
            f"feedback: {counts.get('questions', 0)} question(s), {counts.get('votes_up', 0)}👍 "
            f"{counts.get('votes_down', 0)}👎 ({counts.get('votes_flipped', 0)} flipped by noise, "
            f"{counts.get('votes_down_bare', 0)} bare), corrections "
            f"{counts.get('corrections_approved', 0)} approved / {counts.get('corrections_rejected', 0)} rejected "
            f"(correction rate {counts.get('correction_rate', 1.0):g})"
        )
        for name, gate in counts.get("gate", {}).items():
            console.print(f"  {name}: gate {gate['gate']}" + (", applied" if gate.get("applied") else ""))
        for name, parts in result.get("split", {}).items():
            text = "; ".join(
                f"{part.replace('_', ' ')} (n={v['n']}): hit@1 {v['before']['hit@1']:.3f} → {v['after']['hit@1']:.3f}"
                for part, v in parts.items()
            )
            console.print(f"  {name} split: {text}")
    if "diagnosis" in result:
        console.print(render_diagnosis(result["diagnosis"], result["dataset"]))
    if plot is not None:
        console.print(f"plot written to {plot}")
