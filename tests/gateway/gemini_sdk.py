"""Drives the gateway with the unmodified Google GenAI Python SDK; prints one JSON line of results.

Arguments: the gateway root URL, a virtual key, the text model's name, the tool-calling model's name.
"""
import json
import sys

from google import genai
from google.genai import errors, types

base_url, api_key, model, tool_model = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
http_options = {"base_url": base_url, "api_version": "v1beta"}
client = genai.Client(api_key=api_key, http_options=http_options)

unary = client.models.generate_content(model=model, contents="Hi")

text, usage = "", None
for chunk in client.models.generate_content_stream(model=model, contents="Hi"):
    for candidate in chunk.candidates or []:
        for part in (candidate.content.parts if candidate.content else None) or []:
            text += part.text or ""
    if chunk.usage_metadata:
        usage = chunk.usage_metadata.total_token_count

weather = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather for a city.",
    parameters=types.Schema(
        type="OBJECT",
        properties={"city": types.Schema(type="STRING")},
        required=["city"],
    ),
)
tool_answer = client.models.generate_content(
    model=tool_model,
    contents="Weather in Zürich?",
    config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])]),
)
call = tool_answer.function_calls[0]

error = None
# Held in a variable: a client that is garbage-collected closes its HTTP connection pool.
wrong_key = genai.Client(api_key="sk_wrong", http_options=http_options)
try:
    wrong_key.models.generate_content(model=model, contents="Hi")
except errors.APIError as exc:  # ClientError with the HTTP status and the parsed body
    error = {"code": exc.code, "message": exc.message}

print(json.dumps({
    "unary": unary.text,
    "unary_usage": unary.usage_metadata.total_token_count,
    "unary_thoughts": unary.usage_metadata.thoughts_token_count,
    "stream": text,
    "stream_usage": usage,
    "call": {"name": call.name, "args": call.args},
    "error": error,
}))
