"""`askloop eval` end to end on a tiny BEIR data set written here (seconds, not minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedback.datasets import DatasetError, load_dataset
from bot.services import eval_world_opener
from feedback.evaluation import EvalOptions, Evaluation, run_eval
from feedback.metrics import METRICS
from tests.conftest import TINY_CORPUS

# Feedback and test questions share information needs (documents); "lunch" has no feedback.
QUERIES = {
    "f-vpn": ("Which tool gets me onto the internal network?", "vpn"),
    "f-exp": ("Who signs off on my restaurant bill?", "expenses"),
    "f-hol": ("Who has to agree before I take time off?", "holidays"),
    "f-dep": ("Can I ship code on the last working day of the week?", "deploy"),
    "t-vpn": ("What tool do I need to reach the internal network?", "vpn"),
    "t-exp": ("Who must sign off on a restaurant bill?", "expenses"),
    "t-hol": ("Who needs to agree before I take days off?", "holidays"),
    "t-dep": ("May I ship code on the last working day of the week?", "deploy"),
    "t-lap": ("How often do we get new computers?", "laptop"),
}


def write_dataset(root: Path, with_feedback: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n", encoding="utf-8")
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, (t, _) in QUERIES.items()) + "\n", encoding="utf-8"
    )
    header = "query-id\tcorpus-id\tscore\n"
    test = "".join(f"{q}\t{d}\t1\n" for q, (_, d) in QUERIES.items() if q.startswith("t-"))
    (root / "qrels" / "test.tsv").write_text(header + test, encoding="utf-8")
    if with_feedback:
        fb = "".join(f"{q}\t{d}\t1\n" for q, (_, d) in QUERIES.items() if q.startswith("f-"))
        (root / "qrels" / "feedback.tsv").write_text(header + fb, encoding="utf-8")
    return root


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny-beir")


def test_simulated_feedback_runs_the_whole_loop(dataset, settings, embedder, tmp_path) -> None:
    options = EvalOptions(simulate=True, strategies=["none", "doc-boost", "askloop"], home=tmp_path / "evalhome")
    result = run_eval(dataset, options, open_world=eval_world_opener(settings))
    assert result["dataset"] == "tiny-beir"
    assert set(result["strategies"]) == {"none", "doc-boost", "askloop"}
    for figures in result["strategies"].values():
        assert set(figures["before"]) == set(METRICS) == set(figures["after"])
    counts = result["counts"]
    assert counts["questions"] == 4 and counts["votes_up"] + counts["votes_down"] == 4
    assert counts["votes_counted"] == 4
    assert counts["corrections_approved"] == counts["votes_down"]  # clean feedback: every fix is right
    assert counts["gate"]["askloop"]["gate"] in {"passed", "failing"}
    # Test questions whose need got no feedback are reported apart, and lose nothing.
    assert counts["test_with_feedback"] == 4 and counts["test_without_feedback"] == 1
    no_fb = result["split"]["askloop"]["without_feedback"]
    assert no_fb["after"]["ndcg@10"] >= no_fb["before"]["ndcg@10"]
    none = result["strategies"]["none"]
    assert none["after"] == none["before"]
    askloop = result["strategies"]["askloop"]
    assert askloop["after"]["mrr@10"] >= askloop["before"]["mrr@10"]
    # The run went through the real store: answers, votes and the applied version are on disk.
    from feedback.store import FeedbackStore

    store = FeedbackStore(f"sqlite:///{tmp_path / 'evalhome' / 'eval-feedback-askloop.db'}")
    assert len(store.answers.recent(limit=100)) == 4
    if counts["gate"]["askloop"]["applied"]:
        assert store.proposals.active_version() is not None
    store.close()


def test_noise_flips_votes_and_wrong_fixes_are_rejected(dataset, settings, embedder, tmp_path) -> None:
    options = EvalOptions(simulate=True, noise=1.0, seed=3, strategies=["askloop"], home=tmp_path / "noisy")
    result = run_eval(dataset, options, open_world=eval_world_opener(settings))
    counts = result["counts"]
    assert counts["votes_flipped"] == 4
    assert counts["corrections_approved"] == 0
    assert counts["corrections_rejected"] == counts["votes_down"]
    split = result["split"]["askloop"]
    assert split["with_flipped_feedback"]["n"] == 4 and split["with_true_feedback"]["n"] == 0


def test_noisy_runs_report_needs_with_a_flipped_vote_apart(dataset, settings, embedder, tmp_path) -> None:
    ds = load_dataset(dataset)
    world = eval_world_opener(settings)(ds, tmp_path / "half")
    noisy = Evaluation(ds, EvalOptions(simulate=True, noise=0.5, seed=1, strategies=["askloop"]), world)
    result = noisy.run()
    flipped = result["counts"]["votes_flipped"]
    assert 0 < flipped < 4  # this seed flips some votes, not all
    # One feedback and one test question per need here: each flipped vote marks one need.
    assert len(noisy.flipped_needs) == flipped
    split = result["split"]["askloop"]
    assert split["with_flipped_feedback"]["n"] == flipped
    assert split["with_true_feedback"]["n"] + flipped == split["with_feedback"]["n"] == 4
    assert set(noisy.rankings) == {"askloop"} and set(noisy.base_rankings) == set(ds.test)
    clean = Evaluation(ds, EvalOptions(simulate=True, seed=1, strategies=["askloop"]), world).run()
    assert set(clean["split"]["askloop"]) == {"with_feedback", "without_feedback"}  # no noise, no such parts


def test_cli_json_and_plot(dataset, home, embedder, tmp_path) -> None:
    from bot.cli import app

    plot = tmp_path / "plot.png"
    out = CliRunner().invoke(
        app, ["eval", str(dataset), "--simulate-feedback", "--strategy", "none,askloop", "--json",
              "--plot", str(plot), "--home", str(tmp_path / "clihome")],
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert set(result) >= {"dataset", "strategies", "counts"}
    assert plot.stat().st_size > 1000


def test_bad_input_is_one_clear_line(tmp_path, home) -> None:
    from bot.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["eval", str(tmp_path / "nowhere")])
    assert out.exit_code == 1 and "not a folder" in out.output
    out = runner.invoke(app, ["eval", str(write_dataset(tmp_path / "ds")), "--strategy", "magic"])
    assert out.exit_code == 1 and "unknown strategy" in out.output
    broken = write_dataset(tmp_path / "broken")
    (broken / "qrels" / "test.tsv").write_text("q\td\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="first line"):
        load_dataset(broken)


def write_wrong_answers(root: Path, n: int = 60) -> Path:
    """A data set whose every feedback question search answers wrongly: each gets a 👎."""
    write_dataset(root)
    extra = {f"f-x{i}": (f"Which tool gets me onto the internal network, try {i}?", "oncall") for i in range(n)}
    with (root / "queries.jsonl").open("a", encoding="utf-8") as out:
        out.write("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in extra.items()))
    header = "query-id\tcorpus-id\tscore\n"
    (root / "qrels" / "feedback.tsv").write_text(header + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in extra.items()),
                                                 encoding="utf-8")
    return root


@pytest.fixture()
def wrong_world(tmp_path, settings, embedder):
    from feedback.datasets import Dataset

    ds: Dataset = load_dataset(write_wrong_answers(tmp_path / "wrong"))
    return ds, eval_world_opener(settings)(ds, tmp_path / "wrong-home")


def simulated(world, **options) -> tuple[dict, Evaluation]:
    ds, w = world
    evaluation = Evaluation(ds, EvalOptions(simulate=True, strategies=["none"], seed=5, **options), w)
    return evaluation.run()["counts"], evaluation


def test_correction_rate_decides_which_thumbs_down_carry_a_correction(wrong_world) -> None:
    full, _ = simulated(wrong_world)
    assert full["votes_down"] == 60 and full["corrections_suggested"] == 60 and full["votes_down_bare"] == 0
    assert full["correction_rate"] == 1.0
    none, _ = simulated(wrong_world, correction_rate=0.0)
    assert none["votes_down"] == 60 and none["corrections_suggested"] == 0 and none["votes_down_bare"] == 60
    some, _ = simulated(wrong_world, correction_rate=0.3)
    assert 10 <= some["corrections_suggested"] <= 26  # ~30% of 60 (binomial sd 3.5), fixed by the seed
    assert some["corrections_suggested"] + some["votes_down_bare"] == 60
    assert some["corrections_approved"] == some["corrections_suggested"]
    again, _ = simulated(wrong_world, correction_rate=0.3)
    assert again == some  # deterministic for a seed


def test_correction_rate_leaves_the_noise_stream_alone(wrong_world) -> None:
    # The same votes are flipped whatever the rate, and rate 1 makes no draw at all: the runs made
    # before the rate existed are reproduced exactly.
    full, full_run = simulated(wrong_world, noise=0.4)
    part, part_run = simulated(wrong_world, noise=0.4, correction_rate=0.3)
    assert 0 < full["votes_flipped"] == part["votes_flipped"] < 60
    assert full_run.flipped_needs == part_run.flipped_needs
    assert full["votes_up"] == part["votes_up"] and full["votes_down"] == part["votes_down"]
    assert full["votes_down_bare"] == 0 and part["votes_down_bare"] > 0
    # Validated targets at rate 1: every 👍's top source and every approved correction's document.
    assert len(full_run.validated) == full["votes_up"] + full["corrections_approved"]


def test_correction_rate_is_checked(tmp_path, home) -> None:
    from bot.cli import app

    with pytest.raises(ValueError, match="--correction-rate"):
        EvalOptions(correction_rate=1.5).check()
    with pytest.raises(ValueError, match="--correction-rate"):
        EvalOptions(correction_rate=-0.1).check()
    out = CliRunner().invoke(app, ["eval", str(write_dataset(tmp_path / "ds")), "--simulate-feedback",
                                   "--correction-rate", "2"])
    assert out.exit_code == 1 and "--correction-rate" in out.output


def test_cli_prints_bare_votes_and_the_diagnosis(dataset, home, embedder, tmp_path) -> None:
    from bot.cli import app

    out = CliRunner().invoke(
        app, ["eval", str(dataset), "--simulate-feedback", "--strategy", "none,askloop", "--correction-rate", "0.5",
              "--diagnose", "--home", str(tmp_path / "clihome")],
        env={"COLUMNS": "160"},
    )
    assert out.exit_code == 0, out.output
    assert "bare" in out.output and "correction rate 0.5" in out.output
    assert "nearest-feedback rule" in out.output and "misses fall" in out.output
    out = CliRunner().invoke(app, ["eval", str(dataset), "--diagnose", "--strategy", "none"])
    assert out.exit_code == 1 and "--diagnose" in out.output
