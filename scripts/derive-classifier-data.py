#!/usr/bin/env python3
"""Derives the classifier's test data from captured Claude Code traffic.

Keeps what the classifier reads (the headers that mark a request's class,
the billing fields of system[0], the session id in metadata, the roles and
content-block types of every message, tool-use ids, model, stream,
max_tokens, the first words of texts Claude Code writes itself: system
reminders, the compaction instruction, the summary that continues a
compacted session, a message typed during a turn) and replaces every piece
of captured prose with a placeholder that is the same for the same text and
different for different texts. Usage:

    python3 scripts/derive-classifier-data.py ../shared/fixtures/claude-code proxy/tests/data/requests
"""
import glob
import hashlib
import json
import os
import sys

KEPT_HEADERS = {
    "content-type", "user-agent", "anthropic-version", "anthropic-beta", "x-app",
    "x-claude-code-session-id", "x-claude-code-prompt-id", "x-claude-code-request-class",
    "x-claude-1p-request-class", "x-claude-code-compaction", "x-claude-code-context-compacted",
    "x-claude-code-agent-id", "x-claude-code-agent-type", "x-claude-code-prev-tool-durations",
}


# Three captures trimmed the end of the billing text ("cc...<+33 chars>").
# The trimmed part is the prompt and turn index; it is restored here from the
# length the trim reports and the session each request belongs to.
TRIMMED_BILLING = {
    "cc...<+33 chars>": {
        "p_tool_continuation_apikey.json": "cc_prompt_index=0; cc_turn_index=1;",
        "p_continue_flag_second_turn.json": "cc_prompt_index=0; cc_turn_index=2;",
    },
    "cc_p...<+31 chars>": {
        "i_failed_prompt_merged_into_next.json": "cc_prompt_index=3; cc_turn_index=3;",
    },
}


def restore_billing(text, name):
    for trim, by_file in TRIMMED_BILLING.items():
        if text.endswith(trim):
            return text[: -len(trim)] + by_file[name]
    return text


# Texts Claude Code writes itself, whose opening words the classifier reads.
KEPT_PREFIXES = [
    "<system-reminder>",
    "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.",
    "This session is being continued from a previous conversation",
    "The user sent a new message while you were working:",
]


def placeholder_text(text):
    if text.startswith("x-anthropic-billing-header:"):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    for prefix in KEPT_PREFIXES:
        if text.startswith(prefix):
            return f"{prefix} <text {digest}>"
    return f"<text {digest}>"


def placeholder_block(block):
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": placeholder_text(block.get("text", ""))}
    if kind == "tool_result":
        return {"type": "tool_result", "tool_use_id": block.get("tool_use_id"), "content": "<tool output>"}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.get("id"), "name": block.get("name", "Tool"), "input": {}}
    return {"type": kind}


def placeholder_content(content):
    if isinstance(content, str):
        return placeholder_text(content)
    return [placeholder_block(b) for b in content]


def derive(request, name):
    body = request.get("body") or {}
    system = body.get("system")
    if isinstance(system, list):
        system = [placeholder_block(b) for b in system[:1]] + [{"type": "text", "text": "<system prompt>"}]
        if not system[0]["text"].startswith("x-anthropic-billing-header:"):
            system[0]["text"] = "<system prompt>"
        system[0]["text"] = restore_billing(system[0].get("text", ""), name)
    elif isinstance(system, str):
        system = "<system prompt>"
    metadata = body.get("metadata")
    if metadata and "user_id" in metadata:
        try:
            user = json.loads(metadata["user_id"])
            user = {"device_id": "<device>", "account_uuid": "", "session_id": user.get("session_id")}
            metadata = {"user_id": json.dumps(user, separators=(",", ":"))}
        except ValueError:
            metadata = {"user_id": "<user>"}
    derived_body = {"model": body.get("model"), "max_tokens": body.get("max_tokens")}
    if "stream" in body:
        derived_body["stream"] = body["stream"]
    if system is not None:
        derived_body["system"] = system
    derived_body["messages"] = [
        {"role": m.get("role"), "content": placeholder_content(m.get("content", ""))}
        for m in body.get("messages", [])
    ]
    if body.get("tools"):
        derived_body["tools"] = [{"name": "<tool>"} for _ in body["tools"]]
    if metadata:
        derived_body["metadata"] = metadata
    headers = [[k, v] for k, v in request["headers"] if k.lower() in KEPT_HEADERS]
    if any(k.lower() == "authorization" for k, _ in request["headers"]):
        headers.append(["authorization", "Bearer <redacted>"])
    else:
        headers.append(["x-api-key", "<redacted>"])
    return {"method": request["method"], "url": request["url"], "headers": headers, "body": derived_body}


def main(source, target):
    os.makedirs(target, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(source, "requests*", "*.json"))):
        with open(path) as f:
            derived = derive(json.load(f), os.path.basename(path))
        out = os.path.join(target, os.path.basename(path))
        with open(out, "w") as f:
            json.dump(derived, f, indent=1, sort_keys=False)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
