"""The research agent over a real corpus: PostgreSQL rows, files on the artifact store.

The shipped corpus (tests/data/agents/corpus) holds a planted answer per
question below; each question is worded unlike the sentence that answers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from aia_workers.agents.builtin.research import ResearchAgent, ResearchConfig, ResearchInput
from aia_workers.agents.contracts import AgentEnvironment, AgentInputError, RunCancelled
from aia_workers.agents.corpora import CorpusRepository, new_corpus, store_document
from aia_workers.agents.extraction import document_kind, extract_text
from aia_workers.agents.llm import LLMClient
from aia_workers.agents.search import process_cache
from aia_workers.backbone.announcements import to_webhooks
from aia_workers.db.migrate import upgrade
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.ml.artifacts import LocalArtifactStore
from aia_workers.settings import Settings
from tests.llm_server import running
from tests.support import REDIS_HOST

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parents[2] / "data" / "agents" / "corpus"

QUESTIONS = [
    (
        "When did the light switch over to electricity, and who did the work?",
        "kestrel_point_lighthouse.md",
        "converted from paraffin to electric power in 1931",
    ),
    (
        "How much honey does a hive on a rooftop yield in a year?",
        "urban_beekeeping.txt",
        "eighteen kilograms of surplus honey",
    ),
    (
        "How long do I have to return a tin of tea I never opened?",
        "copper_kettle_tea.html",
        "returned within 45 days",
    ),
    (
        "Which platform is the Saltmarsh train that carries bicycles for free?",
        "millbrook_timetable.csv",
        "departs: 07:42; arrives: 08:19; platform: 4",
    ),
    (
        "How far has the Tovik ice retreated over three decades?",
        "tovik_glacier_notes.md",
        "lost roughly 1.2 kilometres",
    ),
    (
        "How often does a sourdough starter need feeding each day?",
        "sourdough_starter.txt",
        "twice a day",
    ),
    ("Can I visit the harbour museum on a Monday?", "harbour_museum.html", "closed on Mondays"),
    (
        "What guarantee comes with the Helio 410 panel?",
        "solar_panels.csv",
        "model: Helio 410; peak watts: 410; efficiency %: 21.3; warranty years: 25",
    ),
    ("When does the chess club meet each week?", "chess_club_minutes.md", "every Thursday"),
    (
        "What was the average nitrate concentration at the weir?",
        "fenwick_water_report.txt",
        "averaged 3.4 milligrams per litre",
    ),
]


@dataclass
class Context:
    """A run as the agent sees it, recording what it reports; cancelled after ``cancel_at``."""

    tenant: str
    env: AgentEnvironment
    agent_id: str = "agent-1"
    run_id: str = "run-1"
    cancel_at: int | None = None
    steps: list[tuple[int, int, str | None]] = field(default_factory=list)
    checkpoints: int = 0

    def progress(self, current: int, total: int, message: str | None = None) -> None:
        self.steps.append((current, total, message))

    def checkpoint(self) -> None:
        self.checkpoints += 1
        if self.cancel_at is not None and self.checkpoints >= self.cancel_at:
            raise RunCancelled("cancelled")


@dataclass
class Corpus:
    id: str
    tenant: str
    documents: dict[str, str]  # file name -> document id
    env: AgentEnvironment


@pytest.fixture(scope="module")
def env(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentEnvironment]:
    tmp = tmp_path_factory.mktemp("research")
    settings = Settings(database_url=postgres_url, data_home=tmp)
    upgrade(settings)
    engine = make_engine(settings)
    client = redis.Redis.from_url(f"redis://{REDIS_HOST}/0")
    yield AgentEnvironment(
        settings=settings,
        sessions=make_sessionmaker(engine),
        artifacts=LocalArtifactStore(tmp / "artifacts"),
        redis=client,
        events=to_webhooks,
    )
    client.close()
    engine.dispose()


def _upload(sessions: sessionmaker[Session], env: AgentEnvironment, tenant: str) -> Corpus:
    corpus = new_corpus(tenant, "town", None, "test")
    documents = {}
    with sessions.begin() as session:
        repository = CorpusRepository(session, tenant)
        repository.add(corpus)
        session.flush()
        for file in sorted(CORPUS.iterdir()):
            data = file.read_bytes()
            extracted = extract_text(data, document_kind("", file.name))
            doc = store_document(
                repository,
                env.artifacts,
                corpus,
                name=file.name,
                data=data,
                extracted=extracted,
                actor="test",
            )
            documents[file.name] = doc.id
    return Corpus(corpus.id, tenant, documents, env)


@pytest.fixture(scope="module")
def corpus(env: AgentEnvironment) -> Corpus:
    return _upload(env.sessions, env, f"t-{uuid.uuid4().hex[:8]}")


def _ask(corpus: Corpus, question: str, **config: Any) -> tuple[dict[str, Any], Context]:
    agent = ResearchAgent(ResearchConfig(corpus_id=corpus.id, **config))
    ctx = Context(corpus.tenant, corpus.env)
    return agent.run(ResearchInput(question=question), ctx), ctx


def _text(name: str) -> str:
    return extract_text((CORPUS / name).read_bytes(), document_kind("", name)).text


@pytest.mark.parametrize(("question", "document", "planted"), QUESTIONS)
def test_the_document_with_the_answer_ranks_in_the_top_three(
    corpus: Corpus, question: str, document: str, planted: str
) -> None:
    result, _ = _ask(corpus, question)
    top = [p["document_id"] for p in result["passages"][:3]]
    assert corpus.documents[document] in top, (
        question,
        [p["document"] for p in result["passages"]],
    )
    # The planted answer is in a passage of that document, which cites it by offsets.
    text = _text(document)
    holding = [
        p
        for p in result["passages"]
        if p["document_id"] == corpus.documents[document] and planted in p["text"]
    ]
    assert holding, result["passages"]
    for passage in result["passages"]:
        source = _text(passage["document"])
        assert source[passage["start"] : passage["end"]] == passage["text"]
    assert text[holding[0]["start"] : holding[0]["end"]] == holding[0]["text"]
    # And the extractive answer quotes it, citing the right place.
    sentences = result["answer"]["sentences"]
    quoting = [s for s in sentences if planted in s["text"]]
    assert quoting, result["answer"]
    cited = quoting[0]
    assert cited["document_id"] == corpus.documents[document]
    assert text[cited["start"] : cited["end"]] == cited["text"]
    assert result["method"] == "extractive"


def test_the_result_has_the_agreed_shape(corpus: Corpus) -> None:
    result, ctx = _ask(corpus, "Who kept the lighthouse?", top_k=2, answer_sentences=1)
    assert result["question"] == "Who kept the lighthouse?"
    assert [p["rank"] for p in result["passages"]] == [1, 2]
    assert set(result["passages"][0]) == {
        "rank",
        "score",
        "document_id",
        "document",
        "passage_index",
        "start",
        "end",
        "text",
    }
    assert result["passages"][0]["score"] >= result["passages"][1]["score"] > 0
    assert len(result["answer"]["sentences"]) == 1
    assert result["answer"]["text"]
    # Progress reaches every step, and the run checks for a cancel between them.
    assert ctx.steps[-1] == (3, 3, "answered")
    assert [s[0] for s in ctx.steps] == sorted(s[0] for s in ctx.steps)
    assert ctx.checkpoints == 2


def test_the_index_is_built_once_per_version(corpus: Corpus) -> None:
    _ask(corpus, "lighthouse keepers")
    _, again = _ask(corpus, "honey")
    # A cached index: nothing was indexed this time.
    assert not [s for s in again.steps if s[2] and s[2].startswith("indexing")]
    cache = process_cache(corpus.env.settings.research_index_cache_size)
    assert cache.get((corpus.tenant, corpus.id, 11)) is not None  # created, then 10 documents


def test_a_new_document_is_found_at_once(env: AgentEnvironment) -> None:
    fresh = _upload(env.sessions, env, f"t-{uuid.uuid4().hex[:8]}")
    before, _ = _ask(fresh, "When does the ferry to Gull Island sail?")
    assert all("Gull Island" not in p["text"] for p in before["passages"])
    data = b"The ferry to Gull Island sails at half past eight from the north quay."
    with env.sessions.begin() as session:
        repository = CorpusRepository(session, fresh.tenant)
        row = repository.get(fresh.id)
        assert row is not None
        store_document(
            repository,
            env.artifacts,
            row,
            name="ferry.txt",
            data=data,
            extracted=extract_text(data, document_kind("text/plain")),
            actor="test",
        )
    after, ctx = _ask(fresh, "When does the ferry to Gull Island sail?")
    assert after["passages"][0]["document"] == "ferry.txt"
    assert after["corpus"]["version"] == before["corpus"]["version"] + 1
    assert any(s[2] == "indexing 11 documents" for s in ctx.steps)


def test_another_tenants_corpus_is_not_found(corpus: Corpus) -> None:
    stranger = Corpus(corpus.id, "someone-else", {}, corpus.env)
    with pytest.raises(AgentInputError, match="no corpus"):
        _ask(stranger, "honey")


def test_an_empty_corpus_and_an_empty_question_say_what_to_do(env: AgentEnvironment) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    empty = new_corpus(tenant, "empty", None, None)
    with env.sessions.begin() as session:
        CorpusRepository(session, tenant).add(empty)
    target = Corpus(empty.id, tenant, {}, env)
    with pytest.raises(AgentInputError, match="no documents yet; upload"):
        _ask(target, "honey")
    with pytest.raises(AgentInputError, match="no words to search"):
        _ask(target, "what is the?")


def test_a_cancel_stops_the_run_at_its_next_step(corpus: Corpus) -> None:
    agent = ResearchAgent(ResearchConfig(corpus_id=corpus.id))
    ctx = Context(corpus.tenant, corpus.env, cancel_at=1)
    with pytest.raises(RunCancelled):
        agent.run(ResearchInput(question="honey"), ctx)
    assert all(step[0] < 2 for step in ctx.steps)


def test_a_language_model_writes_the_answer_from_the_passages(corpus: Corpus) -> None:
    question = "When does the chess club meet each week?"
    offline, _ = _ask(corpus, question)
    with running() as server, LLMClient(base_url=server.base_url, model="tiny") as llm:
        with_model = replace(corpus.env, llm=llm)
        agent = ResearchAgent(ResearchConfig(corpus_id=corpus.id))
        result = agent.run(ResearchInput(question=question), Context(corpus.tenant, with_model))
        [request] = server.requests
        server.fail(500, times=3)
        failed = agent.run(ResearchInput(question=question), Context(corpus.tenant, with_model))
        not_asked = ResearchAgent(ResearchConfig(corpus_id=corpus.id, use_llm=False)).run(
            ResearchInput(question=question), Context(corpus.tenant, with_model)
        )
    assert result["method"] == "llm"
    # The test server answers with the prompt's first line.
    assert result["answer"]["text"] == f"Question: {question}"
    prompt = request["body"]["messages"][-1]["content"]
    for passage in offline["passages"]:
        assert passage["text"] in prompt
    # The cited sentences stay the extractive ones, so every claim can be checked.
    assert result["answer"]["sentences"] == offline["answer"]["sentences"]
    assert result["passages"] == offline["passages"]
    assert failed["method"].startswith("extractive (language model")
    assert failed["answer"] == offline["answer"]
    assert not_asked["method"] == "extractive"
