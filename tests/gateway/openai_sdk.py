"""Drives the gateway with the unmodified OpenAI Python SDK; prints one JSON line of results."""
import json
import sys

from openai import OpenAI

base_url, api_key, model, embedding_model = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
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

embeddings = client.embeddings.create(model=embedding_model, input=["The food was delicious", "and the waiter"])

response = client.responses.create(model=model, input="Say hello")
response_stream = client.responses.create(model=model, input="Say hello", stream=True)
response_text, response_stream_usage, event_types = "", None, []
for event in response_stream:
    event_types.append(event.type)
    if event.type == "response.output_text.delta":
        response_text += event.delta
    elif event.type == "response.completed":
        response_stream_usage = event.response.usage.total_tokens

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
    "embeddings": {
        "count": len(embeddings.data),
        "dimensions": len(embeddings.data[0].embedding),
        "usage": embeddings.usage.prompt_tokens,
    },
    "response": {
        "text": response.output_text,
        "usage": response.usage.total_tokens,
        "stream_text": response_text,
        "stream_usage": response_stream_usage,
        "last_event": event_types[-1] if event_types else None,
    },
    "error": error,
}))
