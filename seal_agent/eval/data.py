"""The evaluation data sets, read from ``../shared/data`` (never copied here),
with the project's dev / held-out split (``data/README.md``: tune on dev only).

Each loader returns plain records and a hash of the file it read, so a result
names exactly the data it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seal_agent.errors import ConfigError

__all__ = [
    "DEFAULT_DATA",
    "Conversation",
    "MemoryQuestion",
    "Passage",
    "Turn",
    "data_dir",
    "file_hash",
    "load_locomo",
    "load_longmemeval",
    "load_squad",
    "load_teacher_edits",
]

Split = Literal["dev", "heldout"]
DEFAULT_DATA = Path("../shared/data")


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """``--data``, else ``SEAL_AGENT_DATA``, else ``../shared/data``; checked to exist."""
    folder = Path(path or os.environ.get("SEAL_AGENT_DATA") or DEFAULT_DATA).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"data folder {folder} not found: pass --data DIR or set SEAL_AGENT_DATA to the "
            "folder holding squad_val.json, locomo10.json and longmemeval_oracle.json"
        )
    return folder


def _read(folder: Path, name: str) -> tuple[Any, str]:
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"{path} not found (see ../shared/data/README.md for the files)")
    raw = path.read_bytes()
    try:
        return json.loads(raw), file_hash(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc


def file_hash(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def _check_split(split: str) -> None:
    if split not in ("dev", "heldout"):
        raise ConfigError(f"split must be 'dev' or 'heldout', not {split!r}")


# -- SQuAD (SEAL's knowledge incorporation) ------------------------------------------
@dataclass(frozen=True)
class Passage:
    id: str  # "<title>#<index in the file>"
    title: str
    context: str
    questions: tuple[tuple[str, str], ...]  # (question, gold answer)
    teacher_edits: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)


def _squad_dev_titles(rows: list[dict[str, Any]]) -> set[str]:
    titles: list[str] = []
    for row in rows:
        if row["title"] not in titles:
            titles.append(row["title"])
    return set(titles[:24])  # the first 24 distinct titles in file order are dev


def load_squad(
    folder: Path, split: Split, *, n: int | None = None, seed: int = 0, min_questions: int = 1
) -> tuple[list[Passage], str]:
    """Passages of one split, ``n`` sampled with ``seed`` (None: all), in file order."""
    _check_split(split)
    rows, digest = _read(folder, "squad_val.json")
    dev = _squad_dev_titles(rows)
    picked = [
        Passage(
            id=f"{row['title']}#{i}",
            title=row["title"],
            context=row["context"],
            questions=tuple((q["question"], str(q["answer"])) for q in row["questions"]),
        )
        for i, row in enumerate(rows)
        if (row["title"] in dev) == (split == "dev") and len(row["questions"]) >= min_questions
    ]
    if n is not None and n < len(picked):
        keep = set(random.Random(seed).sample(range(len(picked)), n))
        picked = [p for i, p in enumerate(picked) if i in keep]
    return picked, digest


def load_teacher_edits(folder: Path, teacher: Literal["qwen7b", "gpt41"]) -> dict[str, list[str]]:
    """SEAL's own self-edits per passage context: ``{context: [completion, ...]}``."""
    rows, _ = _read(folder, f"seal_selfedits_{teacher}_val.json")
    return {row["context"]: [str(c) for c in row["completions"]] for row in rows}


# -- conversations (LoCoMo, LongMemEval) ------------------------------------------------
@dataclass(frozen=True)
class Turn:
    speaker: str  # a LoCoMo speaker name, or "user" / "assistant"
    text: str
    date: str  # the session's date as the data set writes it
    id: str  # LoCoMo dia_id ("D3:5"), or "<session id>:<index>"
    evidence: bool  # cited as evidence for some question of this record


@dataclass(frozen=True)
class MemoryQuestion:
    id: str
    question: str
    answer: str
    category: str  # LoCoMo "1".."5"; LongMemEval question_type
    abstention: bool  # the right answer says the information is not available
    date: str | None = None


@dataclass(frozen=True)
class Conversation:
    id: str
    speakers: tuple[str, ...]
    sessions: tuple[tuple[Turn, ...], ...]
    questions: tuple[MemoryQuestion, ...]

    def turns(self, which: Literal["evidence", "sessions", "all"]) -> list[Turn]:
        """``all`` turns; the ``sessions`` holding any evidence; or the ``evidence`` turns only."""
        if which == "all":
            return [t for s in self.sessions for t in s]
        if which == "sessions":
            return [t for s in self.sessions if any(t.evidence for t in s) for t in s]
        return [t for s in self.sessions for t in s if t.evidence]


def load_locomo(
    folder: Path,
    split: Split,
    *,
    conversations: int | None = None,
    questions_per_conversation: int | None = None,
    categories: set[str] | None = None,
    seed: int = 0,
) -> tuple[list[Conversation], str]:
    """LoCoMo: the first 5 conversations are dev, the last 5 held-out.

    Questions are sampled per conversation (``seed``); a turn counts as
    evidence only for the sampled questions.
    """
    _check_split(split)
    rows, digest = _read(folder, "locomo10.json")
    rows = rows[:5] if split == "dev" else rows[5:]
    if conversations is not None:
        rows = rows[:conversations]
    cats = categories or {"1", "2", "3", "4"}  # the usual scored set; 5 is adversarial
    out = []
    for row in rows:
        qa = [q for q in row["qa"] if str(q["category"]) in cats]
        rng = random.Random(f"{seed}:{row['sample_id']}")
        if questions_per_conversation is not None and questions_per_conversation < len(qa):
            keep = set(rng.sample(range(len(qa)), questions_per_conversation))
            qa = [q for i, q in enumerate(qa) if i in keep]
        evidence = {e.strip() for q in qa for e in q.get("evidence", []) for e in e.split(";")}
        conv = row["conversation"]
        sessions = []
        n = 1
        while f"session_{n}" in conv:
            date = str(conv.get(f"session_{n}_date_time", ""))
            sessions.append(tuple(
                Turn(speaker=t["speaker"], text=_locomo_text(t), date=date, id=t["dia_id"],
                     evidence=t["dia_id"] in evidence)
                for t in conv[f"session_{n}"]
            ))
            n += 1
        questions = tuple(
            MemoryQuestion(
                id=f"{row['sample_id']}:{i}",
                question=q["question"],
                answer=str(q.get("answer", q.get("adversarial_answer", ""))),
                category=str(q["category"]),
                abstention=str(q["category"]) == "5",
            )
            for i, q in enumerate(qa)
        )
        out.append(Conversation(
            id=str(row["sample_id"]), speakers=(conv["speaker_a"], conv["speaker_b"]),
            sessions=tuple(sessions), questions=questions,
        ))
    return out, digest


def _locomo_text(turn: dict[str, Any]) -> str:
    text = str(turn.get("text", ""))
    if turn.get("blip_caption"):  # a shared photo: keep what it showed
        text = f"{text} [shares a photo: {turn['blip_caption']}]"
    return text


def load_longmemeval(
    folder: Path,
    split: Split,
    *,
    n: int | None = None,
    question_types: set[str] | None = None,
    seed: int = 0,
) -> tuple[list[Conversation], str]:
    """LongMemEval (oracle): the first 250 questions are dev, the last 250 held-out.

    Each question is its own conversation (its evidence sessions); a turn is
    evidence when the data set marks it ``has_answer``.
    """
    _check_split(split)
    rows, digest = _read(folder, "longmemeval_oracle.json")
    rows = rows[:250] if split == "dev" else rows[250:]
    if question_types:
        rows = [r for r in rows if r["question_type"] in question_types]
    if n is not None and n < len(rows):
        keep = set(random.Random(seed).sample(range(len(rows)), n))
        rows = [r for i, r in enumerate(rows) if i in keep]
    out = []
    for row in rows:
        sessions = []
        for sid, date, session in zip(
            row["haystack_session_ids"], row["haystack_dates"], row["haystack_sessions"], strict=True
        ):
            sessions.append(tuple(
                Turn(speaker=t["role"], text=str(t["content"]), date=str(date), id=f"{sid}:{i}",
                     evidence=bool(t.get("has_answer")))
                for i, t in enumerate(session)
            ))
        qid = str(row["question_id"])
        out.append(Conversation(
            id=qid, speakers=("user", "assistant"), sessions=tuple(sessions),
            questions=(MemoryQuestion(
                id=qid, question=str(row["question"]), answer=str(row["answer"]),
                category=str(row["question_type"]), abstention=qid.endswith("_abs"),
                date=str(row.get("question_date", "")) or None,
            ),),
        ))
    return out, digest
