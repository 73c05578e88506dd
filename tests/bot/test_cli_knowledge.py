"""`askloop ingest` and `askloop ask` as a user runs them: exit codes, output, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import SHARED_DATA, TINY_CORPUS
from tests.support.retrieval import drop_leaked_log_handlers, free_port, write_corpus, write_pdf

ASKLOOP = Path(sys.executable).parent / "askloop"


@pytest.fixture()
def cli(home: Path, embedder):
    """Run `askloop ...` in this process (the model stays loaded), returning the click result."""
    drop_leaked_log_handlers()
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


def one_line_error(result, text: str) -> None:
    """The failure is one readable line on stderr, with no traceback, and a non-zero exit."""
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(line.startswith("error:") and text in line for line in lines), result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr


def command_names() -> set[str]:
    names = set()
    for command in app.registered_commands:
        names.add(command.name or command.callback.__name__.replace("_", "-"))
    for group in app.registered_groups:
        names.add(group.name or group.typer_instance.info.name)
    return names


def test_help_lists_every_command(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    names = command_names()
    assert {"ingest", "ask", "shell"} <= names
    for name in names:
        assert f" {name} " in result.stdout, name


def test_ingest_then_ask(cli, tiny_corpus: Path) -> None:
    result = cli("ingest", tiny_corpus)
    assert result.exit_code == 0, result.output
    assert "documents 6 added, 0 updated, 0 unchanged; chunks 6 added" in result.stdout

    again = cli("ingest", tiny_corpus)
    assert "documents 0 added, 0 updated, 6 unchanged" in again.stdout

    result = cli("ask", "How do I request holidays?")
    assert result.exit_code == 0
    assert result.stdout.startswith(TINY_CORPUS[2]["text"])
    assert "Sources:" in result.stdout
    assert "[1] Requesting holidays — " in result.stdout and "corpus.jsonl#holidays" in result.stdout


def test_ask_json_shape(cli, tiny_corpus: Path) -> None:
    cli("ingest", tiny_corpus)
    result = cli("ask", "--json", "-k", "3", "When is the on-call handover?")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"answer", "sources", "abstained"} <= set(data)
    assert isinstance(data["answer"], str) and data["abstained"] is False
    assert len(data["sources"]) == 3
    for source in data["sources"]:
        assert set(source) == {"doc_id", "title", "source", "score", "confidence", "passage"}
        assert isinstance(source["score"], float) and 0 < source["confidence"] < 1
    assert data["sources"][0]["doc_id"] == "oncall"
    assert data["sources"][0]["passage"] == TINY_CORPUS[3]["text"]


def test_ask_abstains_with_closest_sources(cli, tiny_corpus: Path, monkeypatch) -> None:
    cli("ingest", tiny_corpus)
    monkeypatch.setenv("ASKLOOP_ANSWER_THRESHOLD", "0.95")
    result = cli("ask", "How do I connect to the VPN?")
    assert result.exit_code == 0
    assert result.stdout.startswith("I couldn't find a good match")
    assert "Closest sources:" in result.stdout and "Connecting to the VPN" in result.stdout
    data = json.loads(cli("ask", "--json", "How do I connect to the VPN?").stdout)
    assert data["abstained"] is True and data["sources"][0]["doc_id"] == "vpn"


def test_ingest_json_summary_and_problems_by_name(cli, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine\n\nReadable text.\n", encoding="utf-8")
    (folder / "latin.txt").write_bytes("na\xefve".encode("latin-1"))
    (folder / "image.pdf").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = cli("ingest", "--json", folder)
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["documents"]["added"] == 1
    assert sorted((Path(p["path"]).name, p["reason"].split(" (")[0]) for p in summary["problems"]) == [
        ("image.pdf", "malformed PDF"),
        ("latin.txt", "not UTF-8 text"),
    ]
    assert "skipped" in result.stderr and "latin.txt: not UTF-8 text" in result.stderr


def test_ingest_every_kind_of_file(cli, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# Markdown\n\nFirst.\n", encoding="utf-8")
    (folder / "b.txt").write_text("Plain text.\n", encoding="utf-8")
    (folder / "c.html").write_text("<title>HTML</title><p>Hyper text.</p>", encoding="utf-8")
    write_pdf(folder / "d.pdf", [["Portable text."]], title="PDF")
    write_corpus(folder / "corpus.jsonl", TINY_CORPUS[:2])
    result = cli("ingest", folder)
    assert result.exit_code == 0
    assert result.stdout.startswith("5 file(s): documents 6 added")
    data = json.loads(cli("ask", "--json", "-k", "10", "portable text").stdout)
    assert data["sources"][0]["title"] == "PDF"


def test_prune_from_the_command_line(cli, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha.\n", encoding="utf-8")
    (folder / "b.md").write_text("# B\n\nBeta.\n", encoding="utf-8")
    cli("ingest", folder)
    (folder / "b.md").unlink()
    result = cli("ingest", "--prune", folder)
    assert result.exit_code == 0
    assert "1 unchanged, 1 removed" in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.txt", b"\x00\x01\x02\x03", "binary file, not text"),
        ("cp1252.md", b"\x93quoted\x94", "not UTF-8 text"),
        ("corpus.jsonl", b"", "file is empty"),
        ("corpus.jsonl", b"\n\n", "file is empty"),
        ("corpus.jsonl", b'{"_id": "x"}\n', '1: missing or empty "text"'),
    ],
)
def test_nothing_ingestable_fails(cli, home: Path, tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = cli("ingest", path)
    one_line_error(result, "nothing could be ingested")
    assert f"{name}:{'' if reason[0].isdigit() else ' '}{reason}" in result.stderr


def test_ingest_missing_path_fails(cli, tmp_path: Path) -> None:
    result = cli("ingest", tmp_path / "nope")
    one_line_error(result, "nothing could be ingested")
    assert "nope: no such file or folder" in result.stderr


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "the question is empty"),
        ("  \t ", "the question is empty"),
        ("w" * 50_000, "the question is too long (50,000 characters"),
        ("caf\udce9 opening hours?", "the question is not valid text"),
        ("how\x00 now", "the question contains a control character (U+0000)"),
    ],
)
def test_bad_questions_fail_with_one_line(cli, tiny_corpus: Path, question: str, message: str) -> None:
    cli("ingest", tiny_corpus)
    result = cli("ask", question)
    one_line_error(result, message)
    assert result.stdout == ""


def test_ask_on_an_empty_knowledge_base(cli) -> None:
    result = cli("ask", "Is anything there?")
    one_line_error(result, "the knowledge base is empty: add documents with `askloop ingest PATH`")


def test_unreachable_chroma_server(cli, home: Path, tiny_corpus: Path, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("ASKLOOP_CHROMA_URL", f"http://127.0.0.1:{port}")
    for args in (["ingest", tiny_corpus], ["ask", "hello?"], ["shell"]):
        result = cli(*args, input="hello?\n")
        one_line_error(result, f"cannot reach the Chroma server at http://127.0.0.1:{port}")
    assert not (home / "chroma").exists()  # nothing was written locally instead


def test_real_console_script_on_covid_qa(tmp_path: Path) -> None:
    """The installed `askloop` script, as a new user runs it, on a real FAQ corpus."""
    corpus = SHARED_DATA / "covid-qa" / "corpus.jsonl"
    if not corpus.exists():
        pytest.skip(f"evaluation data not found at {corpus}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env["ASKLOOP_HOME"] = str(tmp_path / "home")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ASKLOOP), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )

    ingested = run("ingest", str(corpus))
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.startswith("1 file(s): documents 209 added")

    asked = run("ask", "--json", "Where does the virus come from?")
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert data["abstained"] is False
    # Sources name the resolved path (ingest resolves links, so one file has one id).
    assert data["sources"] and all(
        s["source"].startswith(f"{corpus.resolve()}#") for s in data["sources"]
    )
    assert all(s["doc_id"].startswith("cv") for s in data["sources"])
    assert "animal" in data["answer"].lower()

    bad = run("ask", "   ")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["error: the question is empty"]


def test_every_setting_is_documented() -> None:
    """docs/configuration.md names every setting's environment variable (README is built from it)."""
    from bot.settings import Settings

    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = list(getattr(alias, "choices", [])) if alias else [f"ASKLOOP_{name.upper()}"]
        if not any(f"`{env}`" in text for env in names):
            missing.append(names[0])
    assert missing == [], f"undocumented settings: {missing}"


def test_missing_embedding_model_is_one_line(cli, tiny_corpus: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ASKLOOP_EMBEDDING_MODEL", str(tmp_path / "no-such-model"))
    for args in (["ingest", tiny_corpus], ["ask", "hello?"]):
        one_line_error(cli(*args), "cannot load embedding model")


def test_sources_name_the_title_and_section_once(cli, tmp_path: Path) -> None:
    path = tmp_path / "holidays.md"
    path.write_text(
        "# Holidays\n\nRequest holidays in the HR portal.\n\n"
        "## Sick leave\n\nCall your manager before 9:00 on every day you are ill.\n",
        encoding="utf-8",
    )
    assert cli("ingest", path).exit_code == 0
    result = cli("ask", "Who do I call when I am ill?")
    assert f"[1] Holidays › Sick leave — {path.resolve()} (confidence" in result.stdout
    assert "› Holidays ›" not in result.stdout


def test_ingest_as_a_user_runs_it_missing_paths_bad_names_and_noisy_pdfs(tmp_path: Path) -> None:
    """The installed script (so stderr is exactly what a terminal gets): a missing path next to
    good ones fails the command after the rest is ingested; escape sequences in file names are
    shown, not obeyed; pypdf's own warnings about a damaged PDF stay off the terminal."""
    import re

    from tests.support.retrieval import write_pdf

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nRead me.\n", encoding="utf-8")
    (folder / "na\x1b[2Jme.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "ti\x1b]0;owned\x07tle.txt").write_text("A file whose name sets the window title.\n", encoding="utf-8")
    pdf = write_pdf(folder / "repaired.pdf", [["Backups run nightly."]], title="Backups").read_bytes()
    # wrong cross-reference offsets: pypdf repairs the file and logs a warning for every object
    (folder / "repaired.pdf").write_bytes(re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m.group(1)) + 3), pdf))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env["ASKLOOP_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [str(ASKLOOP), "ingest", str(folder), str(tmp_path / "missing.md")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("3 file(s): documents 3 added")
    assert result.stderr.splitlines() == [
        f"skipped {tmp_path}/missing.md: no such file or folder",
        f"skipped {folder}/broken.pdf: malformed PDF (PdfStreamError)",
        f"skipped {folder}/na\\x1b[2Jme.txt: not UTF-8 text (bad byte at offset 3)",
        f"error: 1 of the paths given could not be read, the rest was ingested: {tmp_path}/missing.md",
    ]
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr


def test_answers_show_escape_sequences_in_names_without_obeying_them(cli, tmp_path: Path) -> None:
    path = tmp_path / "vpn\x1b[2J\x1b]0;owned\x07.txt"
    path.write_text("Install the WireGuard client before connecting to the VPN.\n", encoding="utf-8")
    assert cli("ingest", path).exit_code == 0
    result = cli("ask", "How do I connect to the VPN?")
    assert "[1] vpn[2J]0;owned — " in result.stdout  # the title, from the name, lost its controls
    assert "vpn\\x1b[2J\\x1b]0;owned\\x07.txt (confidence" in result.stdout  # the path shows them escaped
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout


def test_the_bundled_model_is_english_only_and_the_docs_say_what_to_do(tiny_services) -> None:
    """German and Japanese questions about an English page abstain with the bundled model; the
    guide says so, and how to use a multilingual model instead."""
    threshold = tiny_services.settings.answer_threshold
    assert tiny_services.knowledge_base.search("How do I request holidays?").hits[0].doc_id == "holidays"
    for question in ("Wie beantrage ich Urlaub?", "休暇はどうやって申請しますか？"):
        assert tiny_services.knowledge_base.search(question).hits[0].score < threshold
    guide = (Path(__file__).resolve().parents[2] / "docs" / "knowledge-base.md").read_text(encoding="utf-8")
    assert "## Languages" in guide and "trained on English" in guide
    assert "`ASKLOOP_EMBEDDING_MODEL`" in guide and "paraphrase-multilingual-MiniLM-L12-v2" in guide


def test_ask_as_a_process_ends_at_once_with_its_output_and_answer_kept(cli, tiny_corpus: Path, home: Path) -> None:
    """`askloop ask` skips the interpreter's teardown: the piped output must still be whole and
    the recorded answer readable by the next command, on the same database."""
    import subprocess
    import sys

    cli("ingest", tiny_corpus)
    askloop = str(Path(sys.executable).parent / "askloop")
    env = {**os.environ, "ASKLOOP_HOME": str(home)}
    done = subprocess.run([askloop, "ask", "--json", "When is the on-call handover?"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer_id = json.loads(done.stdout)["answer_id"]
    voted = subprocess.run([askloop, "vote", str(answer_id), "+1"], env=env, capture_output=True, text=True, timeout=300)
    assert voted.returncode == 0, voted.stderr + voted.stdout
    shown = subprocess.run([askloop, "ask", "How do I request holidays?"], env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and shown.stdout.rstrip().endswith("--source FILE`")
