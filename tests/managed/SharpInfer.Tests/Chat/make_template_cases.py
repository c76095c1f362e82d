#!/usr/bin/env python3
# make_template_cases.py: renders chat templates with Jinja2 configured as Hugging Face's
# apply_chat_template configures it (sandboxed, trim_blocks, lstrip_blocks, raise_exception,
# tojson without ASCII escaping) and writes chat_template_cases.json, the oracle that
# ChatTemplateTests checks SharpInfer's renderer against. Rerun after editing a case:
#   python3 tests/managed/SharpInfer.Tests/Chat/make_template_cases.py
import json
import os

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
          "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
          "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n"
          "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")

MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
         "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
         "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")

QWEN = """{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

KITCHEN_SINK = """{%- set ns = namespace(sys='', count=0) -%}
{%- for m in messages if m.role == 'system' -%}{%- set ns.sys = ns.sys ~ m.content -%}{%- endfor -%}
{%- macro turn(role, text) -%}<{{ role|upper }}>{{ text|trim }}</{{ role }}>{%- endmacro -%}
{%- if ns.sys %}[{{ ns.sys }}]{% endif -%}
{%- for m in messages|rejectattr('role', 'equalto', 'system') -%}
{%- set ns.count = ns.count + 1 -%}
{{ turn(m.role, m.content) }}{{ '|' if not loop.last else '' }}
{%- else -%}(empty)
{%- endfor %}
n={{ ns.count }} {{ messages|length }} {{ (messages|last).role }} {{ messages[-1]['content'][:3] }} {{ extra is defined }} {{ tools is not defined }}
{{ {'a': [1, 2.5, true, none], 'b': 'q"\\n'}|tojson }} {{ 7 // 2 }} {{ 7 % 3 }} {{ -7 // 2 }} {{ 'x' * 3 }} {{ "a,b".split(',') }} {{ range(3)|list }} {{ [3, 1][::-1] }}
{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }}{{ ';' if not loop.last }}{% endfor %} {{ 'abc'.upper()|lower }} {{ 'Hello World'.startswith('Hell') }} {{ none is none }} {{ 3 is odd }}
{%- set block %}B{{ 1 + 1 }}{% endset %} {{ block }} {{ 'yes' if add_generation_prompt else 'no' }} {{ messages|map(attribute='role')|join(',') }}
  {% if true %}
    indented {{ loop is defined }}
  {% endif %}
{# a comment #}
{{ 1.5 + 1 }} {{ 2.0 }} {{ [1, 'a'] }} {{ messages[0] is mapping }} {{ ('a' in 'cat') and not ('z' in ['a']) }} {{ 10 > 3 >= 3 }}
{%- for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}
"""

TEMPLATES = {"chatml": CHATML, "llama2": LLAMA2, "zephyr": ZEPHYR, "mistral": MISTRAL, "llama3": LLAMA3,
             "gemma": GEMMA, "qwen": QWEN, "kitchen_sink": KITCHEN_SINK}

CONVERSATIONS = {
    "system_user_assistant_user": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": " Hi there! "},
        {"role": "assistant", "content": "Hello.\n"},
        {"role": "user", "content": "Tell me a story about a cat."},
    ],
    "user_assistant_user": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3? Say \"six\"."},
    ],
    "single_user": [{"role": "user", "content": "Once upon a time"}],
    "out_of_order": [{"role": "assistant", "content": "I start?"}, {"role": "user", "content": "no"}],
}


def render(source, messages, add_generation_prompt):
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(source)
    return template.render(messages=messages, add_generation_prompt=add_generation_prompt, bos_token="<s>", eos_token="</s>")


def main():
    cases = []
    for tname, source in TEMPLATES.items():
        for cname, messages in CONVERSATIONS.items():
            for gen in (True, False):
                case = {"template": tname, "conversation": cname, "add_generation_prompt": gen}
                try:
                    case["expected"] = render(source, messages, gen)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    out = {"templates": TEMPLATES, "conversations": CONVERSATIONS, "cases": cases}
    with open(os.path.join(HERE, "chat_template_cases.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
