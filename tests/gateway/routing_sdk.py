"""Routed requests through the unmodified OpenAI and Anthropic Python SDKs; prints one JSON line.

argv: gateway root, virtual key, the OpenAI-family model to request, the Anthropic model to request.
`/v1/llm/chat` is called through the OpenAI client's own request method (it is not one of the
OpenAI API's paths); `/v1/chat/completions` and `/v1/messages` through the SDKs' resources.
"""
import json
import sys

from anthropic import Anthropic
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletionChunk

root, api_key, openai_model, anthropic_model = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
messages = [{"role": "user", "content": "Hi"}]

unified = OpenAI(base_url=root + "/v1/llm", api_key=api_key, max_retries=0)
unary = unified.post(
    "/chat", body={"model": openai_model, "max_tokens": 50, "messages": messages}, cast_to=object
)
stream = unified.post(
    "/chat",
    body={"model": openai_model, "max_tokens": 50, "messages": messages, "stream": True},
    cast_to=object,
    stream=True,
    stream_cls=Stream[ChatCompletionChunk],
)
streamed = ""
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content

native = OpenAI(base_url=root + "/v1", api_key=api_key, max_retries=0)
native_error = None
try:
    native.chat.completions.create(model=openai_model, messages=messages)
except Exception as exc:  # the OpenAI family has no healthy candidate: its 500 is relayed
    native_error = getattr(exc, "status_code", None)

claude = Anthropic(base_url=root, api_key=api_key, max_retries=0)
message = claude.messages.create(model=anthropic_model, max_tokens=50, messages=messages)

print(json.dumps({
    "unified": {"provider": unary["provider"], "model": unary["model"], "content": unary["content"]},
    "unified_stream": streamed,
    "native_openai_status": native_error,
    "native_anthropic": {"text": message.content[0].text, "model": message.model},
}))
