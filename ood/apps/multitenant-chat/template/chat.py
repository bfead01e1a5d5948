"""A chat with a shared LLM, served by Gradio behind the job's gate (multitenant-chat).

The openai package reads OPENAI_BASE_URL and OPENAI_API_KEY from the environment (before.sh sets them
from the share; never on a command line). The model is MULTITENANT_LLM_MODEL, else the first one the
server lists. Gradio serves on the Unix socket MULTITENANT_CHAT_SOCKET (in the job's private directory:
no other user's process on the node can connect to it, around the gate) under GRADIO_ROOT_PATH (the path
OOD's node proxy gives it), set by script.sh.
"""
import os
import sys

import gradio as gr
import openai
import uvicorn
from fastapi import FastAPI

# A share made without the gate has no key; the openai package refuses to start without one.
os.environ.setdefault("OPENAI_API_KEY", "none")
client = openai.OpenAI()
BASE_URL = os.environ.get("OPENAI_BASE_URL", "")


def model():
    name = os.environ.get("MULTITENANT_LLM_MODEL", "").strip()
    if name:
        return name
    listed = client.models.list().data
    if not listed:
        raise gr.Error(f"The LLM at {BASE_URL} lists no model yet: try again in a minute.")
    return listed[0].id


def text(content):
    """A message's text, whatever shape Gradio's history gives it in."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text(c) for c in content)
    return ""


def respond(message, history):
    messages = [{"role": m["role"], "content": text(m.get("content"))} for m in history if m.get("role") in ("user", "assistant")]
    messages.append({"role": "user", "content": text(message)})
    try:
        stream = client.chat.completions.create(model=model(), messages=messages, stream=True)
        answer = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                answer += chunk.choices[0].delta.content
                yield answer
    except openai.AuthenticationError:
        raise gr.Error(f"The LLM at {BASE_URL} refused this share's key: the share has ended or been restarted. Start a new chat from the form.")
    except openai.APIConnectionError:
        raise gr.Error(f"The LLM at {BASE_URL} does not answer: its job may have ended.")
    except openai.APIStatusError as e:
        raise gr.Error(f"The LLM at {BASE_URL} answered HTTP {e.status_code}: {e.message}")


def main():
    if not BASE_URL:
        sys.exit("multitenant-chat: OPENAI_BASE_URL is not set: choose a shared LLM in the form")
    title = "Chat with " + (os.environ.get("MULTITENANT_LLM_MODEL") or "a shared LLM")
    socket = os.environ.get("MULTITENANT_CHAT_SOCKET", "")
    if not socket:
        sys.exit("multitenant-chat: MULTITENANT_CHAT_SOCKET is not set: start it from the app's script.sh")
    demo = gr.ChatInterface(respond, title=title, api_name="chat")
    # Gradio's own launch() listens only on a TCP port; mounted, uvicorn serves it on the socket. No
    # server-side rendering: its Node server would listen on a TCP port of the node.
    app = gr.mount_gradio_app(FastAPI(), demo.queue(), path="/", root_path=os.environ.get("GRADIO_ROOT_PATH") or "", show_error=True,
                             ssr_mode=False)
    uvicorn.run(app, uds=socket, log_level="info")


if __name__ == "__main__":
    main()
