"""Episodes: contexts with probe questions, the material of a policy round.

An episode is what one reward needs: the text a self-edit is written about,
the text trained beside the self-edit (the passage itself, or the user's own
statements, as consolidation does), and the probe questions scored after.
Four sources:

* ``journal``: interactions that have probe questions (consolidation stored
  every candidate, its prompt and reward beside them);
* ``squad``: SQuAD **dev** passages, their gold questions as probes (SEAL's
  RL setup: rewards on the training passages' own questions);
* ``locomo``: LoCoMo **dev** conversations, one episode per session holding
  the evidence of some questions, those questions as probes;
* a file of passages and probes (JSON list or JSON lines).

The held-out split is never read here: it is for reported numbers only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from seal_agent.errors import ConfigError

if TYPE_CHECKING:
    from seal_agent.journal import Journal

__all__ = ["Episode", "EpisodeSet", "load_episodes"]

QA = tuple[str, str]


@dataclass(frozen=True)
class Episode:
    id: str
    source: str  # what the self-edit is written about
    probes: tuple[QA, ...]  # (question, gold answer), scored with nothing in context
    sources: tuple[str, ...]  # trained beside the self-edit's lines
    style: Literal["user", "passage"] = "passage"
    title: str = ""


@dataclass
class EpisodeSet:
    origin: str  # "squad (dev)", "journal", a file path ...
    episodes: list[Episode]
    skipped_no_probes: int = 0
    digest: str = ""  # what was read, so a run can tell its episodes changed
    notes: list[str] = field(default_factory=list)

    def split(self, train: int, select: int) -> tuple[list[Episode], list[Episode]]:
        """The first ``train`` episodes train, the next ``select`` decide promotion."""
        if len(self.episodes) < train + select:
            raise ConfigError(
                f"{self.origin} has {len(self.episodes)} usable contexts; a round needs "
                f"{train} to train and {select} held apart: lower --contexts or --select"
            )
        return self.episodes[:train], self.episodes[train : train + select]


def load_episodes(
    source: str,
    *,
    n: int,
    seed: int = 0,
    data: Path | None = None,
    journal: Journal | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
) -> EpisodeSet:
    """``n`` episodes from ``source`` (journal | squad | locomo | a file path).

    Raises ConfigError with a clear message when no episode is available.
    """
    if source == "journal":
        if journal is None:
            raise ConfigError("the journal source needs an open journal")
        found = _journal(journal, n, user_id, agent_id)
    elif source == "squad":
        found = _squad(data, n, seed)
    elif source == "locomo":
        found = _locomo(data, n, seed)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"episode source {source!r} is not journal, squad, locomo or an existing file"
            )
        found = _file(path, n, seed)
    if not found.episodes:
        extra = f" ({found.skipped_no_probes} contexts had no probe questions)" if found.skipped_no_probes else ""
        hint = {
            "journal": "chat or remember with probes, then consolidate, or use --source squad",
        }.get(source, "check the file or data folder")
        raise ConfigError(f"no episodes available from {found.origin}{extra}: {hint}")
    return found


def _digest(parts: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _squad(data: Path | None, n: int, seed: int) -> EpisodeSet:
    from seal_agent.eval.data import data_dir, load_squad

    passages, file_digest = load_squad(data_dir(data), "dev", n=n, seed=seed)
    episodes = [
        Episode(id=p.id, source=p.context, probes=tuple(p.questions), sources=(p.context,),
                style="passage", title=p.title)
        for p in passages if p.questions
    ]
    random.Random(seed).shuffle(episodes)  # file order groups titles; mix them across the split
    return EpisodeSet(origin="squad (dev split)", episodes=episodes,
                      skipped_no_probes=len(passages) - len(episodes),
                      digest=_digest([file_digest, *(e.id for e in episodes)]))


def _locomo(data: Path | None, n: int, seed: int) -> EpisodeSet:
    """One episode per dev session holding all the evidence of some questions."""
    from seal_agent.eval.data import data_dir, load_locomo

    folder = data_dir(data)
    conversations, file_digest = load_locomo(folder, "dev")
    raw = {str(r["sample_id"]): r for r in json.loads((folder / "locomo10.json").read_text())}
    episodes: list[Episode] = []
    skipped = 0
    for conv in conversations:
        turn_session = {t.id: s for s, session in enumerate(conv.sessions) for t in session}
        by_session: dict[int, list[QA]] = defaultdict(list)
        scored = [q for q in raw[conv.id]["qa"] if str(q["category"]) in {"1", "2", "3", "4"}]
        for q, mq in zip(scored, conv.questions, strict=True):
            ids = {e.strip() for ev in q.get("evidence", []) for e in ev.split(";") if e.strip()}
            sessions = {turn_session.get(i) for i in ids}
            only = sessions.pop() if len(sessions) == 1 else None
            if only is not None:
                by_session[only].append((mq.question, mq.answer))
        for s, session in enumerate(conv.sessions):
            if s not in by_session:
                skipped += 1
                continue
            text = "\n".join(f"{t.speaker}: {t.text}" for t in session)[:2900]
            date = session[0].date if session else ""
            source = f"({date})\n{text}" if date else text
            episodes.append(Episode(id=f"{conv.id}:s{s + 1}", source=source,
                                    probes=tuple(by_session[s]), sources=(source,),
                                    style="passage", title=conv.id))
    random.Random(seed).shuffle(episodes)
    episodes = episodes[:n]
    return EpisodeSet(origin="locomo (dev split)", episodes=episodes, skipped_no_probes=skipped,
                      digest=_digest([file_digest, *(e.id for e in episodes)]))


def _file(path: Path, n: int, seed: int) -> EpisodeSet:
    """JSON list or JSON lines of ``{"context" | "text" | "passage", "title"?,
    "questions" | "probes": [{"question", "answer"} | [question, answer]]}``."""
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()
        ]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is neither a JSON list nor JSON lines: {exc}") from exc
    episodes: list[Episode] = []
    skipped = 0
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: record {i} is not an object")
        context = row.get("context") or row.get("text") or row.get("passage")
        if not isinstance(context, str) or not context.strip():
            raise ConfigError(f"{path}: record {i} has no context/text/passage string")
        probes: list[QA] = []
        for q in row.get("questions") or row.get("probes") or []:
            if isinstance(q, dict) and q.get("question") and q.get("answer") is not None:
                probes.append((str(q["question"]), str(q["answer"])))
            elif isinstance(q, list | tuple) and len(q) == 2:
                probes.append((str(q[0]), str(q[1])))
            else:
                raise ConfigError(f"{path}: record {i} has a probe that is not "
                                  "{question, answer} or [question, answer]")
        if not probes:
            skipped += 1
            continue
        episodes.append(Episode(id=str(row.get("id", f"{path.name}#{i}")), source=context.strip(),
                                probes=tuple(probes), sources=(context.strip(),), style="passage",
                                title=str(row.get("title", ""))))
    random.Random(seed).shuffle(episodes)
    episodes = episodes[:n]
    return EpisodeSet(origin=str(path), episodes=episodes, skipped_no_probes=skipped,
                      digest=_digest([hashlib.sha256(text.encode()).hexdigest(), *(e.id for e in episodes)]))


def _journal(journal: Journal, n: int, user_id: str | None, agent_id: str | None) -> EpisodeSet:
    """Interactions with probes, newest first; sources are the user's own statements."""
    from seal_agent.text import drop_questions
    from seal_agent.types import DeriveStatus, SelfEditFormat

    done = journal.interactions(user_id=user_id, agent_id=agent_id,
                                derive_status=[DeriveStatus.DONE], newest_first=True)
    episodes: list[Episode] = []
    skipped = 0
    for interaction in done:
        if len(episodes) >= n:
            break
        source = drop_questions(interaction.user_text)
        probes = tuple((p.question, p.answer) for p in journal.probes(interaction_id=interaction.id))
        if not source:
            continue  # a turn that only asked questions states nothing to write about
        if not probes:
            skipped += 1
            continue
        statements = tuple(
            e.text for e in journal.self_edits(interaction_id=interaction.id)
            if e.format is SelfEditFormat.STATEMENT
        ) or (source,)
        episodes.append(Episode(id=interaction.id, source=source, probes=probes,
                                sources=statements, style="user"))
    return EpisodeSet(origin="the journal", episodes=episodes, skipped_no_probes=skipped,
                      digest=_digest([e.id for e in episodes]))
