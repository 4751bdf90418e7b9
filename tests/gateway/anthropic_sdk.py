"""Drives the gateway with the unmodified Anthropic Python SDK; prints one JSON line of results."""
import json
import sys

import anthropic

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
messages = [{"role": "user", "content": "Hi"}]


def usage(u):
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": getattr(u, "cache_read_input_tokens", None),
        "cache_creation_input_tokens": getattr(u, "cache_creation_input_tokens", None),
    }


unary = client.messages.create(model=model, max_tokens=64, messages=messages)

with client.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()

error = None
try:
    anthropic.Anthropic(base_url=base_url, api_key="sk_wrong", max_retries=0).messages.create(
        model=model, max_tokens=64, messages=messages
    )
except anthropic.APIStatusError as exc:  # AuthenticationError, with the parsed body
    body = exc.body if isinstance(exc.body, dict) else {}
    error = {
        "status": exc.status_code,
        "class": type(exc).__name__,
        "code": (body.get("error") or {}).get("code"),
    }

print(json.dumps({
    "unary": "".join(block.text for block in unary.content if block.type == "text"),
    "unary_stop_reason": unary.stop_reason,
    "unary_usage": usage(unary.usage),
    "stream": text,
    "stream_stop_reason": final.stop_reason,
    "stream_usage": usage(final.usage),
    "error": error,
}))
