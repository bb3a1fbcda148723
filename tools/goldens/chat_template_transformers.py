#!/usr/bin/env python3
"""Golden chat-template renderings from transformers, for datasets/tests/chat_template_transformers.rs.

Renders conversations with `apply_chat_template(..., tokenize=False)` of a
`PreTrainedTokenizerFast` that carries only the template and its BOS/EOS
tokens, which is all apply_chat_template reads when it does not tokenize.

Templates, in datasets/tests/goldens/chat_templates/:
- smollm2.jinja: `tokenizer.chat_template` of the reference teacher, written
  here from the GGUF (ChatML);
- llama-3.1.jinja, qwen2.5.jinja: the models' tokenizer_config.json templates as
  llama.cpp keeps them in models/templates (llama-cpp-python 0.3.36 sdist,
  vendor/llama.cpp/models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja and
  Qwen-Qwen2.5-7B-Instruct.jinja).

Snippets exercise the Python behaviour templates lean on (tojson, string
methods, loop controls, namespace, raise_exception).

    ~/.cache/decant/venv/bin/python tools/goldens/chat_template_transformers.py

Needs `pip install transformers jinja2` in the venv (no torch) and the gguf
package from tools/setup-python.sh.
"""
import json
import os
from pathlib import Path

import jinja2
import transformers
from gguf import GGUFReader
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "datasets/tests/goldens"
TEMPLATES = GOLDENS / "chat_templates"
OUT = GOLDENS / "chat_template_transformers.json"
CACHE = Path(os.environ.get("DECANT_CACHE", Path.home() / ".cache/decant"))
REFERENCE = Path(os.environ.get("DECANT_REFERENCE_MODEL", CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))

# (template file, bos, eos)
TEMPLATE_FILES = [
    ("smollm2.jinja", "<|im_start|>", "<|im_end|>"),
    ("llama-3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("qwen2.5.jinja", None, "<|im_end|>"),
]

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    [
        {"role": "system", "content": "  Padded system prompt.\n"},
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?"},
    ],
    [
        {"role": "user", "content": "Translate 'chat' to French."},
        {"role": "assistant", "content": "« le chat » 🐈"},
    ],
    [
        {
            "role": "user",
            "content": "Multi-line\n\n  indented\ttab\n{{ not a tag }} {% neither %} <|im_end|> \"quotes\" 'single' 中文",
        }
    ],
    [{"role": "user", "content": ""}],
    [
        {"role": "user", "content": "  leading and trailing spaces  "},
        {"role": "assistant", "content": "\nnewline first\n"},
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "done"},
    ],
]

# Small templates for Python behaviours the model templates above do not all reach.
SNIPPETS = [
    "{{ {'b': 1, 'a': [1, 2.5, none, true], 'ü': 'é\"\\n'} | tojson }}",
    "{{ {'b': 1, 'a': {'c': [1, {}], 'd': []}} | tojson(indent=2) }}",
    "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}",
    "{{ ['ü', '\\t'] | tojson(ensure_ascii=true) }}|{{ 1e20 | tojson }}|{{ 0.1 | tojson }}|{{ -3 | tojson }}",
    "{% for m in messages %}[{{ m.content.strip() }}|{{ m['content'].upper() }}|{{ m.content.split(' ') | length }}]{% endfor %}",
    "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role.title() }}:{{ m.content.startswith('H') }}{% endfor %}",
    "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{{ loop.index0 }}={{ m.role }};{% endfor %}",
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m.content | length %}{% endfor %}{{ ns.n }}",
    "{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}{{ v }}{% endfor %}|{{ messages[0].get('missing', 'default') }}",
    "{{ messages[0].content is string }} {{ tools is none }} {{ documents is defined }} {{ custom is defined }} [{{ custom }}]",
    "{% if messages[0].role != 'system' %}{{ raise_exception('Conversations must start with a system message!') }}{% endif %}ok",
    "  {% if true %}\n    lstrip and trim\n  {% endif %}\nend\n",
]
SNIPPET_CONVERSATION = [
    {"role": "user", "content": "  Hello there, world  "},
    {"role": "assistant", "content": "Hi"},
]


def smollm2_template():
    reader = GGUFReader(REFERENCE)
    return reader.fields["tokenizer.chat_template"].contents()


def tokenizer_for(template, bos, eos):
    specials = [token for token in ("<unk>", bos, eos) if token]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(specials))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, chat_template=template)


def render(tokenizer, conversation, add_generation_prompt):
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
        return {"rendered": text}
    except jinja2.exceptions.TemplateError as error:
        return {"error": str(error)}


def main():
    (TEMPLATES / "smollm2.jinja").write_text(smollm2_template())
    golden = {
        "generator": "tools/goldens/chat_template_transformers.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "templates": [],
        "snippets": [],
    }
    for file, bos, eos in TEMPLATE_FILES:
        tokenizer = tokenizer_for((TEMPLATES / file).read_text(), bos, eos)
        cases = [
            {"messages": conversation, "add_generation_prompt": add, **render(tokenizer, conversation, add)}
            for conversation in CONVERSATIONS
            for add in (True, False)
        ]
        golden["templates"].append({"file": file, "bos_token": bos, "eos_token": eos, "cases": cases})
    for snippet in SNIPPETS:
        tokenizer = tokenizer_for(snippet, "<s>", "</s>")
        golden["snippets"].append(
            {"template": snippet, "messages": SNIPPET_CONVERSATION, **render(tokenizer, SNIPPET_CONVERSATION, False)}
        )
    OUT.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    n_cases = sum(len(template["cases"]) for template in golden["templates"])
    print(f"wrote {OUT}: {n_cases} renderings of {len(TEMPLATE_FILES)} templates, {len(SNIPPETS)} snippets")


if __name__ == "__main__":
    main()
