"""LangChain: distil what any chat model learns about a user into the local model.

SealAgentCallbackHandler is attached to a chat model the app already uses
(a hosted one, typically).  Each answer it gives is logged into the seal-agent
journal, becomes self-edits in the background, and can later be consolidated
into the small local model's weights (`seal-agent consolidate --user maya`).

To run offline, a local model stands in for the hosted one: a plain
LangChain chat model over the SmolLM2 weights, with no memory of its own.
Swap in ChatOpenAI, ChatAnthropic, ... unchanged.

    python examples/langchain_callback.py [--home DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_seal_agent import ChatSealAgent, SealAgentCallbackHandler

from seal_agent import GenerationParams, Message, SealAgent
from seal_agent.models import quiet_model_loading

USER = "maya"
TOLD = ["I'm allergic to peanuts, so never suggest satay to me.", "I play the bassoon."]
QUESTION = "What am I allergic to?"


class StandInHostedModel(BaseChatModel):
    """Any chat model: here the local weights with no seal-agent memory."""

    lm: Any

    @property
    def _llm_type(self) -> str:
        return "stand-in-hosted"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        role = {"human": "user", "ai": "assistant", "system": "system"}
        prompt = [Message(role=role[m.type], content=m.text) for m in messages]
        text = self.lm.chat(prompt, GenerationParams(max_new_tokens=48))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="memory home (default: a temp dir)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="seal-callback-"))
    shutil.rmtree(home, ignore_errors=True)
    quiet_model_loading()

    with SealAgent.open(home) as agent:
        handler = SealAgentCallbackHandler(agent, user_id=USER)
        hosted = StandInHostedModel(lm=agent.lm)  # the app's model, unchanged but for callbacks
        print("== the app talks to its own model; the handler logs each answer")
        for n, text in enumerate(TOLD):
            reply = hosted.invoke(text, config={"callbacks": [handler],
                                                "metadata": {"session_id": f"web-{n}"}})
            print(f"user> {text}\nhosted model> {reply.content}")
        agent.flush()  # self-edits are written in the background
        counts = agent.journal.counts(USER)
        print(f"\nlogged turns: {len(handler.logged)}; buffered self-edits: "
              f"{counts['self_edits']['buffered']}; probe questions: {counts['probes']}")
        for edit in agent.journal.self_edits(user_id=USER)[:6]:
            print(f"  {edit.format.value:>11}: " + edit.text.replace("\n", " / "))

        print("\n== the local model, a new session, with what the hosted one was told")
        local = ChatSealAgent(agent=agent, user_id=USER, max_tokens=32)
        answer = local.invoke(QUESTION, config={"configurable": {"session_id": "local"}})
        retrieved = [agent.journal.get_self_edit(i).text
                     for i in answer.response_metadata["seal_agent"]["memories"]]
        for text in retrieved:
            print(f"  retrieved into the prompt: {text}")
        print(f"local model> {answer.content}")
        if not any("peanut" in t.lower() for t in retrieved):
            print("FAIL: the logged fact was not retrieved for the local model")
            return 1
        print("fact retrieved into the local prompt: yes; answer says it: "
              + ("yes" if "peanut" in answer.content.lower() else "no"))
        print(f"\nnext: seal-agent consolidate --user {USER}   (with SEAL_AGENT_HOME={home})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
