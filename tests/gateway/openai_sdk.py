"""Drives the gateway with the unmodified OpenAI Python SDK; prints one JSON line of results."""
import json
import sys

from openai import OpenAI

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

unary = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Hi"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage.total_tokens

error = None
try:
    OpenAI(base_url=base_url, api_key="sk_wrong", max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}]
    )
except Exception as exc:  # the SDK raises AuthenticationError with the parsed body
    error = {"status": getattr(exc, "status_code", None), "code": getattr(exc, "code", None)}

print(json.dumps({
    "unary": unary.choices[0].message.content,
    "unary_usage": unary.usage.total_tokens,
    "stream": text,
    "stream_usage": usage,
    "error": error,
}))
