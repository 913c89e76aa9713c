"""The research agent: a question in, ranked passages of a corpus and an extractive answer out.

Light at import (pydantic and the standard library): the API imports this
module to list the type's schemas; the index and ranking
(``aia_workers.agents.search``: bm25s, NLTK, scikit-learn) are imported by ``run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from aia_workers.agents.contracts import AgentContext, AgentInputError, AgentType

if TYPE_CHECKING:
    from aia_workers.agents.search import Answer, AnswerWriter, Hit

__all__ = ["ResearchAgent", "ResearchConfig", "ResearchInput"]

_STEPS = 3


class ResearchConfig(BaseModel):
    """Which corpus the agent searches, and how much it returns."""

    model_config = ConfigDict(extra="forbid")

    corpus_id: str = Field(
        min_length=1, max_length=64, description="A corpus of the tenant (/v1/agents/corpora)."
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Passages returned, best first.")
    answer_sentences: int = Field(
        default=3, ge=1, le=20, description="Sentences of the extractive answer at most."
    )
    use_llm: bool = Field(
        default=True,
        description="Where the deployment has a language model (AIA_LLM_BASE_URL), it writes "
        "the answer from the ranked passages; the cited sentences stay the extractive ones.",
    )


class ResearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)


class ResearchAgent(AgentType[ResearchConfig, ResearchInput]):
    """Searches a corpus: passages ranked by BM25 with citations, and the best sentences."""

    name: ClassVar[str] = "research"
    summary: ClassVar[str] = (
        "Answers a question from a document collection: ranked passages citing their "
        "document and position, and an extractive answer of the best sentences."
    )
    config_model: ClassVar[type[BaseModel]] = ResearchConfig
    input_model: ClassVar[type[BaseModel]] = ResearchInput

    def run(self, inputs: ResearchInput, ctx: AgentContext) -> dict[str, Any]:
        from aia_workers.agents.corpora import CorpusNotFound
        from aia_workers.agents.search import corpus_index, process_cache, tokenize

        config = self.config
        env = ctx.env
        if not tokenize(inputs.question):
            raise AgentInputError(
                "the question has no words to search for (only very common words or "
                "punctuation); ask with the words the answer would contain"
            )
        ctx.progress(0, _STEPS, "reading the corpus")
        cache = process_cache(env.settings.research_index_cache_size)

        def building(documents: int) -> None:
            ctx.progress(0, _STEPS, f"indexing {documents} documents")

        try:
            index, version, _ = corpus_index(
                env.sessions, env.artifacts, ctx.tenant, config.corpus_id, cache, building
            )
        except CorpusNotFound:
            raise AgentInputError(
                f"there is no corpus {config.corpus_id} in this tenant; create one at "
                "/v1/agents/corpora and set its id as the agent's corpus_id"
            ) from None
        if not index.passages:
            raise AgentInputError(
                f"the corpus {config.corpus_id} has no documents yet; upload some to "
                f"/v1/agents/corpora/{config.corpus_id}/documents"
            )
        ctx.checkpoint()
        ctx.progress(1, _STEPS, f"ranking {len(index.passages)} passages")
        hits = index.search(inputs.question, config.top_k)
        ctx.checkpoint()
        ctx.progress(2, _STEPS, "choosing the answer's sentences")
        answer = self.answer_writer(ctx)(inputs.question, hits, sentences=config.answer_sentences)
        ctx.progress(_STEPS, _STEPS, "answered")
        return {
            "question": inputs.question,
            "corpus": {"id": config.corpus_id, "version": version},
            "passages": [_passage(hit) for hit in hits],
            "answer": _answer(answer),
            "method": answer.method,
        }

    def answer_writer(self, ctx: AgentContext) -> AnswerWriter:
        """What writes the answer from the ranked passages.

        The best sentences of the passages, or, where the deployment has a
        language model and the agent may use it, the model's answer from those
        passages, citing the same sentences (method ``llm``).
        """
        from aia_workers.agents.search import extractive_answer

        llm = ctx.env.llm
        if llm is None or not self.config.use_llm:
            return extractive_answer
        from aia_workers.agents.prose import model_answer_writer

        return model_answer_writer(llm, extractive_answer)


def _passage(hit: Hit) -> dict[str, Any]:
    p = hit.passage
    return {
        "rank": hit.rank,
        "score": round(hit.score, 6),
        "document_id": p.document_id,
        "document": p.document,
        "passage_index": p.passage_index,
        "start": p.start,
        "end": p.end,
        "text": p.text,
    }


def _answer(answer: Answer) -> dict[str, Any]:
    return {
        "text": answer.text,
        "sentences": [
            {
                "text": s.text,
                "document_id": s.document_id,
                "document": s.document,
                "start": s.start,
                "end": s.end,
                "score": round(s.score, 6),
            }
            for s in answer.sentences
        ],
    }
